"""gankit: the classic GAN methods under one PyTorch engine, where a method is a config."""

__version__ = "0.1.0"
