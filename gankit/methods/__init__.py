"""Methods that add networks or objective terms to the adversarial game, registered in ``TERMS`` by name."""
from gankit.methods import acgan  # noqa: F401  (registers)
from gankit.methods import veegan  # noqa: F401  (registers)
from gankit.methods import infogan  # noqa: F401  (registers)
