import os

import pytest

from gankit_testing import run_cli_here  # (importing it sets the suite's torch threads)

# precision auto on a CPU times the model on the machine (gankit/precision.py): the suite pins fp32, so that its
# floors and equivalences do not depend on which machine runs it; tests/test_precision.py tests the measurement.
os.environ["GANKIT_CPU_PRECISION"] = "fp32"


@pytest.fixture
def cli():
    """`gankit ARGS` in this process (test_cli.py keeps real processes for the end-to-end runs)."""
    return run_cli_here
