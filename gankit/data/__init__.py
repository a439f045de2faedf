"""Datasets, registered by name. Data that fits in memory is one tensor on the training device."""
from gankit.data import toy  # noqa: F401  (registers)
from gankit.data import folder, images  # noqa: F401  (registers)
from gankit.data import stacked_mnist  # noqa: F401  (registers)
from gankit.data.base import InMemoryData

__all__ = ["InMemoryData"]
