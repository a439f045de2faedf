"""benchmarks/device_check.sh, the one prepared GPU check: its dry run takes every code path on the CPU."""
import importlib.util
import os
import subprocess
import sys

import pytest
import torch

from gankit_testing import ROOT, assert_user_error

SCRIPT = ROOT / "benchmarks" / "device_check.sh"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=400, cwd=ROOT,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})


def test_dry_run_prints_one_table_with_every_section_and_family():
    spec = importlib.util.spec_from_file_location("device_check", ROOT / "benchmarks" / "device_check.py")
    module = sys.modules["device_check"] = importlib.util.module_from_spec(spec)  # (dataclasses look it up)
    spec.loader.exec_module(module)
    # torchrun's section (four process launches, 26 s of this test's 60 on 2 cores) is left out here: its launcher
    # is what tests/test_distributed.py runs. Before a device session, run
    # `bash benchmarks/device_check.sh --dry-run --sections torchrun` by hand.
    result = run("--dry-run", "--sections", "family,image_step,vs_reference,seed_batch")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [ln for ln in result.stdout.splitlines() if ln.startswith("| ") and not ln.startswith("| section")]
    sections = {r.split("|")[1].strip() for r in rows}
    assert sections == {"family", "image_step", "vs_reference", "seed_batch"}
    assert not any("FAILED" in r or "failed" in r for r in rows), rows
    family_rows = [r for r in rows if r.startswith("| family")]
    assert [config for _, config, _ in module.FAMILIES] == [r.split("(")[-2].split(")")[0] for r in family_rows]
    assert all("fp32" in r and "bf16" in r and "ms per G step" in r for r in family_rows)
    image_methods = {r.split("|")[2].strip() for r in rows if r.startswith("| image_step")}
    assert image_methods == {"DCGAN", "WGAN-GP", "SNGAN-ResNet", "CGAN (concat)"}
    # the stacked seeds of an SNGAN config batch (stackable spectral norm)
    assert any("ring_sngan" in r for r in rows if r.startswith("| seed_batch"))


@pytest.mark.parametrize("args, needle", [
    (["--dry-run", "--sections", "family,nope"], "unknown section 'nope'"),
    (["--dry-run", "--reference", "/nonexistent"], "no scripts/train.py"),
])
def test_bad_arguments_are_one_line(args, needle):
    assert_user_error(run(*args), needle)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_a_gpu_the_real_check_refuses_in_one_line():
    assert_user_error(run(), "no CUDA device")
