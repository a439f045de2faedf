import pytest
import torch

from gankit_testing import run_cli_here

torch.set_num_threads(2)


@pytest.fixture
def cli():
    """`gankit ARGS` in this process (test_cli.py keeps real processes for the end-to-end runs)."""
    return run_cli_here
