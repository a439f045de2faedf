"""Generators and discriminators, registered by name. Spectral normalisation is a flag of each model."""
from gankit.models import convnet, dcgan, infogan_mnist, maxout, mlp, resnet, veegan  # noqa: F401  (registers)
