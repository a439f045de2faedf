import pytest
import torch

from gankit_testing import run_cli

torch.set_num_threads(2)


@pytest.fixture
def cli():
    return run_cli
