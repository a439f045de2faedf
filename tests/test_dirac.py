"""The Dirac-GAN lab: closed forms of Mescheder et al. 2018, the paper's verdicts, and `gankit dirac`."""
import argparse
import cmath
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gankit.dirac import lab
from gankit.dirac.command import add_arguments, run
from gankit.dirac.lab import Method, jacobians, run_grid, run_method
from gankit.errors import GankitError
from gankit.augment.noise import InstanceNoise


ROOT = Path(__file__).resolve().parents[1]
FP, FPP = 0.5, -0.25  # f(t) = -log(1 + exp(-t)): f'(0) = 1/2, f''(0) = -1/4
H = 0.2


def pair(re, disc):
    """re +- sqrt(disc), as a sorted complex pair."""
    r = cmath.sqrt(disc)
    return sorted([re - r, re + r], key=lambda z: (z.real, z.imag))


CLOSED_FORMS = [
    (Method("gan", "none"), pair(0, -FP ** 2)),                 # +- f'(0) i
    (Method("ns", "none"), pair(0, -FP ** 2)),
    (Method("wgan", "none"), pair(0, -1)),                      # +- i
    (Method("hinge", "none"), pair(0, -1)),                     # hinge is linear near the equilibrium
    (Method("wgan", "noise", weight=0.7), pair(0, -1)),         # a linear loss is blind to noise in expectation
]
for g in (0.3, 1.0, 2.0):                                       # R1 / R2: -g/2 +- sqrt(g^2/4 - f'(0)^2)
    for r in ("r1", "r2"):
        CLOSED_FORMS.append((Method("gan", r, weight=g), pair(-g / 2, g * g / 4 - FP ** 2)))
for s in (0.7, 1.5):                                            # noise: f'' s^2 +- sqrt(f''^2 s^4 - f'^2)
    CLOSED_FORMS.append((Method("gan", "noise", weight=s), pair(FPP * s * s, FPP ** 2 * s ** 4 - FP ** 2)))
for g in (1.0, 0.5):                                            # consensus: -g f'^2 +- f' i
    CLOSED_FORMS.append((Method("gan", "consensus", weight=g), pair(-g * FP ** 2, -FP ** 2)))
    CLOSED_FORMS.append((Method("ns", "consensus", weight=g), pair(-g * FP ** 2, -FP ** 2)))
CLOSED_FORMS.append((Method("wgan", "consensus", weight=1.0), pair(-1.0, -1)))  # J = [[0,1],[-1,0]], J^T J = I
# Relativistic losses, D(x) = psi x, real data at 0. RpGAN: L_D = softplus(psi theta), L_G = softplus(-psi theta),
# so J = [[0, f'], [-f', 0]] with f' = sigmoid(0) = 1/2: +- i/2, like the minimax GAN; each of R1 and R2 adds
# -gamma to J's psi-psi entry (dD/dx = psi at real and generated data alike): -g/2 +- sqrt(g^2/4 - 1/4) alone,
# -g +- sqrt(g^2 - 1/4) together (locally convergent for every g > 0). RaGAN with one sample per side:
# L_D = 2 softplus(psi theta), twice RpGAN's field: +- i, and with R1 -g/2 +- sqrt(g^2/4 - 1).
CLOSED_FORMS.append((Method("rpgan", "none"), pair(0, -FP ** 2)))
CLOSED_FORMS.append((Method("ragan", "none"), pair(0, -1)))
for g in (0.3, 1.0):
    CLOSED_FORMS.append((Method("rpgan", "r1", weight=g), pair(-g / 2, g * g / 4 - FP ** 2)))
    CLOSED_FORMS.append((Method("rpgan", "r2", weight=g), pair(-g / 2, g * g / 4 - FP ** 2)))
    CLOSED_FORMS.append((Method("rpgan", "r1+r2", weight=g), pair(-g, g * g - FP ** 2)))
    CLOSED_FORMS.append((Method("ragan", "r1", weight=g), pair(-g / 2, g * g / 4 - 1)))


@pytest.fixture(scope="module")
def closed_form_jacobians():
    return jacobians([m for m, _ in CLOSED_FORMS])


@pytest.mark.parametrize("i", range(len(CLOSED_FORMS)), ids=[f"{m.loss}-{m.reg}-{m.w:g}" for m, _ in CLOSED_FORMS])
def test_eigenvalues_match_closed_forms(closed_form_jacobians, i):
    expected = np.array(CLOSED_FORMS[i][1])
    ev = np.linalg.eigvals(closed_form_jacobians[i])
    ev = ev[np.lexsort((ev.imag, ev.real))]
    # input_gradient computes dD/dx in fp32, hence 1e-6 and not 1e-12
    np.testing.assert_allclose(ev, expected, atol=2e-6)


def test_eigenvalues_of_a_single_run_match_the_batch(closed_form_jacobians):
    r = run_method("gan", "r1", weight=0.3, steps=2)
    np.testing.assert_allclose(r.eigenvalues, pair(-0.15, 0.0225 - 0.25), atol=2e-6)


@pytest.mark.parametrize("method", [Method("gan", "r1", weight=0.3), Method("gan", "noise", weight=0.7),
                                    Method("ns", "consensus", weight=1.0), Method("lsgan", "rlc")])
def test_batched_jacobian_equals_functional_jacobian(method):
    """The one-pass batched Jacobian agrees with torch.autograd.functional.jacobian on a single game."""
    batch = lab._Batch([method], clip=1.0, noise_samples=2, expected_noise=True)

    def field(theta, psi):
        g_theta, g_psi = batch.grads(theta, psi, 0, want_g=True, want_d=True, graph=True)
        return torch.cat([-g_theta, -g_psi])

    zero = torch.zeros(1, dtype=torch.float64)
    jt, jp = torch.autograd.functional.jacobian(field, (zero, zero.clone()), create_graph=False)
    full = torch.cat([jt, jp], dim=1).numpy()
    np.testing.assert_allclose(full, jacobians([method])[0], atol=1e-9)


def test_simultaneous_gd_diverges_and_alternating_gd_circles_on_the_unregularised_gan():
    sim = run_method("gan", "none", mode="simultaneous")
    alt = run_method("gan", "none", mode="alternating")
    # I + hJ with eigenvalues 1 +- h f'(0) i: radius sqrt(1 + h^2/4) > 1
    assert sim.spectral_radius > 1
    assert sim.spectral_radius == pytest.approx(math.sqrt(1 + H * H * FP * FP), abs=1e-7)
    assert alt.spectral_radius == pytest.approx(1.0, abs=1e-7)  # det 1, |trace| < 2: on the unit circle
    assert sim.distances[-1] > sim.distances[0]  # spirals outwards
    assert not sim.converged and not alt.converged


@pytest.mark.parametrize("mode", ["simultaneous", "alternating"])
@pytest.mark.parametrize("n_d", [1, 3])
@pytest.mark.parametrize("method", [Method("gan", "r1"), Method("wgan", "none"), Method("hinge", "consensus"),
                                    Method("gan", "none")])
def test_update_matrix_is_the_linearisation_of_the_simulated_step(method, mode, n_d):
    """Finite differences of one simulated iteration around (0, 0) reproduce update_matrix."""
    eps = 1e-6
    cols = []
    for start in ((eps, 0.0), (0.0, eps)):
        r = run_method(method.loss, method.reg, mode=mode, n_d=n_d, steps=1, start=start)
        cols.append(r.trajectory[1] / eps)
    np.testing.assert_allclose(np.array(cols).T, r.update, atol=1e-5)


@pytest.fixture(scope="module")
def grid():
    results = run_grid()
    return {(r.loss, r.reg, r.mode): r for r in results}


def test_grid_has_every_method(grid):
    pairs = [(lo, re) for lo in lab.LOSS_NAMES for re in lab.REG_NAMES if not lab.unsupported(lo, re)]
    assert len(grid) == len(pairs) * len(lab.MODES)
    assert set(grid) == {(lo, re, mo) for lo, re in pairs for mo in lab.MODES}


@pytest.mark.parametrize("mode", lab.MODES)
def test_verdicts_agree_with_the_paper(grid, mode):
    # not convergent: unregularised minimax GAN, WGAN with one D step per G step, WGAN-GP
    for loss in ("gan", "wgan", "wgan-gp"):
        assert not grid[(loss, "none", mode)].converged, loss
    # convergent: R1, R2, instance noise, consensus
    for reg in ("r1", "r2", "noise", "consensus"):
        assert grid[("gan", reg, mode)].converged, reg
        assert grid[("ns", reg, mode)].converged, reg


@pytest.mark.parametrize("mode", lab.MODES)
def test_rpgan_converges_with_r1_and_r2_and_not_without(grid, mode):
    assert not grid[("rpgan", "none", mode)].converged
    assert not grid[("ragan", "none", mode)].converged
    for reg in ("r1", "r2", "r1+r2"):
        assert grid[("rpgan", reg, mode)].converged, reg
    assert grid[("rpgan", "r1+r2", mode)].distance < grid[("rpgan", "r1", mode)].distance


def test_relativistic_loss_with_expected_noise_is_refused():
    with pytest.raises(GankitError, match="relativistic"):
        run_method("rpgan", "noise")


@pytest.mark.parametrize("n_d", [1, 5])
def test_wgan_with_finitely_many_d_steps_does_not_converge(n_d):
    for mode in lab.MODES:
        r = run_method("wgan", "none", mode=mode, n_d=n_d)
        assert not r.converged
        assert np.abs(r.trajectory[:, 1]).max() <= 1.0 + 1e-12  # psi is clipped to [-1, 1]


def test_critical_r1_converges():
    r = run_method("gan", "r1", weight=1.0)  # gamma = 2 f'(0): double eigenvalue -1/2
    np.testing.assert_allclose(r.eigenvalues, [-0.5, -0.5], atol=2e-3)
    assert r.converged


def test_r1_and_r2_trajectories_coincide(grid):
    for loss in lab.LOSS_NAMES:
        for mode in lab.MODES:
            # the same field; only the order of float64 additions differs between the two blocks
            np.testing.assert_allclose(grid[(loss, "r1", mode)].trajectory, grid[(loss, "r2", mode)].trajectory,
                                       rtol=1e-12, atol=1e-14)


def test_batched_grid_equals_single_runs(grid):
    """Each game of the batch gets exactly its own gradient: the grid equals runs of one method (for the
    deterministic methods; RLC shares one module across games, exact here because D(real) = 0)."""
    for key in [("gan", "r1", "simultaneous"), ("wgan", "none", "alternating"), ("hinge", "consensus", "alternating"),
                ("lsgan", "rlc", "simultaneous"), ("ns", "rlc", "alternating"), ("wgan-gp", "gp", "simultaneous")]:
        single = run_method(key[0], key[1], mode=key[2])
        # penalties are mean-reduced in fp32 inside gankit (input_gradient), so 1/n rounds differently per batch
        np.testing.assert_allclose(grid[key].trajectory, single.trajectory, rtol=1e-5, atol=1e-7, err_msg=str(key))


def test_gradient_penalties_are_flagged_not_differentiable(grid):
    assert not grid[("wgan-gp", "none", "simultaneous")].differentiable
    assert not grid[("dragan", "r1", "simultaneous")].differentiable
    assert not grid[("gan", "gp", "simultaneous")].differentiable
    assert grid[("gan", "r1", "simultaneous")].differentiable


def test_instance_noise_goes_through_the_augmentation_on_real_and_fake(monkeypatch):
    seen = []
    original = InstanceNoise.forward

    def spy(self, x, step):
        seen.append(x.detach().clone())
        return original(self, x, step)

    monkeypatch.setattr(InstanceNoise, "forward", spy)
    run_method("gan", "noise", mode="alternating", steps=1, start=(0.75, 1.0), noise_samples=8)
    # alternating: one G evaluation and one D evaluation, each perturbing the real and the generated batch
    assert len(seen) == 4
    assert any(torch.all(x == 0) for x in seen) and any(torch.allclose(x, torch.full_like(x, 0.75)) for x in seen)


def test_clip_value_is_used():
    r = run_method("wgan", "none", clip=0.3, steps=50, start=(1.0, 1.0))
    assert np.abs(r.trajectory[:, 1]).max() <= 0.3 + 1e-12


def test_api_rejects_bad_input():
    with pytest.raises(GankitError, match="choose one of: gan, ns, wgan"):
        run_method("nope")
    with pytest.raises(GankitError, match="--lr"):
        run_method("gan", lr=0)


# ---------------------------------------------------------------------------------------------------------------
# gankit dirac (command.py), through an argparse parser built with add_arguments
# ---------------------------------------------------------------------------------------------------------------


def parse(*argv):
    parser = argparse.ArgumentParser(prog="gankit dirac")
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_command_all_writes_grid_outputs(tmp_path, capsys, monkeypatch, grid):
    """The files of `--all` (the grid itself is the module's fixture, computed once: the same defaults)."""
    asked = []
    monkeypatch.setattr(lab, "run_grid", lambda **kw: asked.append(kw) or list(grid.values()))
    out = tmp_path / "grid"
    assert run(parse("--all", "--out", str(out))) == 0
    assert all(asked[0][k] == v for k, v in lab.DEFAULTS.items() if k in asked[0]) and len(asked) == 1
    names = sorted(p.name for p in out.iterdir())
    assert names == ["dirac.json", "dirac_grid.pdf", "dirac_grid.png", "dirac_table.csv", "dirac_table.md"]
    data = json.loads((out / "dirac.json").read_text())
    cells = len(lab.grid_methods())
    assert len(data) == cells
    for key in ("loss", "reg", "mode", "theta", "psi", "distance", "eigenvalues", "spectral_radius", "converged"):
        assert key in data[0]
    by = {(d["loss"], d["reg"], d["mode"]): d for d in data}
    assert by[("gan", "r1", "alternating")]["converged"] is True
    assert by[("gan", "none", "simultaneous")]["converged"] is False
    assert by[("gan", "none", "simultaneous")]["spectral_radius"] > 1
    re_, im = by[("wgan", "none", "alternating")]["eigenvalues"][1]
    assert (re_, im) == pytest.approx((0.0, 1.0), abs=1e-9)
    assert (out / "dirac_grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "dirac_grid.pdf").read_bytes()[:5] == b"%PDF-"
    assert "| gan | r1 |" in (out / "dirac_table.md").read_text()
    assert len((out / "dirac_table.csv").read_text().splitlines()) == cells + 1
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_command_one_method_writes_json_and_figure(tmp_path, capsys):
    out = tmp_path / "one"
    assert run(parse("--loss", "ns", "--reg", "consensus", "--mode", "alternating", "--n-d", "2", "--lr", "0.1",
                     "--steps", "300", "--start", "0.5", "-0.5", "--out", str(out))) == 0
    data = json.loads((out / "dirac.json").read_text())
    assert isinstance(data, list) and len(data) == 1
    assert data[0]["loss"] == "ns" and data[0]["reg"] == "consensus" and data[0]["mode"] == "alternating"
    assert data[0]["n_d"] == 2 and data[0]["steps"] == 300 and data[0]["start"] == [0.5, -0.5]
    assert (out / "dirac_ns_consensus_alternating.png").exists()
    assert (out / "dirac_ns_consensus_alternating.pdf").exists()
    assert "converged" in capsys.readouterr().out


BAD_INPUT = [
    (["--loss", "foo"], ["--loss", "foo", ", ".join(lab.LOSS_NAMES)]),
    (["--reg", "bar"], ["--reg", "bar", ", ".join(lab.REG_NAMES)]),
    (["--mode", "random"], ["--mode", "simultaneous, alternating"]),
    (["--lr", "0"], ["--lr"]),
    (["--lr", "-0.5"], ["--lr"]),
    (["--weight", "-1"], ["--weight"]),
    (["--steps", "0"], ["--steps"]),
    (["--n-d", "0"], ["--n-d"]),
    (["--all", "--loss", "gan"], ["--loss", "--all"]),
    (["--loss", "rpgan", "--reg", "noise"], ["--reg noise", "rpgan"]),
]


@pytest.mark.parametrize("argv,needles", BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_command_bad_input_raises_one_line_before_writing(tmp_path, argv, needles):
    out = tmp_path / "out"
    with pytest.raises(GankitError) as info:
        run(parse(*argv, "--out", str(out)))
    msg = str(info.value)
    assert "\n" not in msg
    for needle in needles:
        assert needle in msg
    assert not out.exists()


# ---------------------------------------------------------------------------------------------------------------
# The same through the real CLI, once gankit/cli.py exists
# ---------------------------------------------------------------------------------------------------------------

needs_cli = pytest.mark.skipif(not (ROOT / "gankit" / "cli.py").exists(), reason="gankit/cli.py not written yet")


def gankit(*args, cwd=None):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "gankit", "dirac", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


CLI_BAD_INPUT = [BAD_INPUT[i] for i in (0, 1, 3, 5, 6, 7)]  # names, lr <= 0, weight < 0, steps <= 0, n_d <= 0


@needs_cli
@pytest.mark.parametrize("argv,needles", CLI_BAD_INPUT, ids=[" ".join(a) for a, _ in CLI_BAD_INPUT])
def test_cli_bad_input_exits_2_with_one_line(tmp_path, argv, needles):
    out = tmp_path / "out"
    result = gankit(*argv, "--out", str(out))
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gankit: error: ")
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]
    assert not out.exists()


@needs_cli
def test_cli_one_method(tmp_path):
    out = tmp_path / "cli"
    result = gankit("--loss", "gan", "--reg", "r1", "--steps", "200", "--out", str(out))
    assert result.returncode == 0, result.stderr
    data = json.loads((out / "dirac.json").read_text())
    assert len(data) == 1 and data[0]["reg"] == "r1"
