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


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the marks (--dist loadgroup)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that share a module- or class-scoped fixture (a training run, a server) go to one xdist worker, so the
    fixture is built once and not once per worker; a new test file needs no mark of its own for that."""
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        shared = info is not None and any(
            fixture_def.scope in ("module", "class")
            for defs in info.name2fixturedefs.values() for fixture_def in defs)
        if shared:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
