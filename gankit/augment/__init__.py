"""Augmentations of D's inputs: applied inside the one D call (``Trainer.run_d``) to real and generated samples
alike, in every phase (D's loss, G's loss, and the samples the penalties differentiate at).

An augmentation is a registered module (``AUGMENTATIONS``) with ``forward(x, step)``: x a batch D is about to
see, step the number of G steps done. One that adapts to D (the ADA heuristic) also implements
``observe(real_logits)``, which the trainer calls with D's outputs on the real batch of every D step. The config
lists them under ``augment:``; they are applied in order. See docs/augment.md for the formulas.
"""
from gankit.augment.base import Augmentation
from gankit.augment import diffaugment, noise  # noqa: F401  (register the built-ins)

__all__ = ["Augmentation"]
