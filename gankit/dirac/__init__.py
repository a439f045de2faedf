"""Dirac-GAN convergence lab: gankit's losses and regularizers on the one-parameter game of Mescheder et al. 2018.

See docs/dirac.md. The Python API lives in ``gankit.dirac.lab``; figures in ``gankit.dirac.plots``; the
``gankit dirac`` command in ``gankit.dirac.command``; the Gradio page in ``gankit.dirac.ui``.
"""
from gankit.dirac.lab import (
    DEFAULT_WEIGHTS,
    LOSS_NAMES,
    MODES,
    REG_NAMES,
    DiracResult,
    Method,
    jacobians,
    run_grid,
    run_method,
    run_methods,
    update_matrix,
    vector_field,
)

__all__ = [
    "DEFAULT_WEIGHTS", "LOSS_NAMES", "MODES", "REG_NAMES", "DiracResult", "Method", "jacobians", "run_grid",
    "run_method", "run_methods", "update_matrix", "vector_field",
]
