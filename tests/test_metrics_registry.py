"""The metric registry's contract (every registered metric, whatever its module), density/coverage against a
brute-force computation, and the clean-FID resize protocol against PIL itself."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gankit.errors import GankitError
from gankit.metrics import compute_metrics, density_coverage, load_metrics, metric_scalar
from gankit.metrics.base import SCOPES, Stream
from gankit.metrics.resize import clean_resize, pil_bicubic_weights
from gankit.metrics.sources import SOURCES

from gankit_testing import FAST, assert_user_error, run_cli_here as run_cli  # in this process

NOISE = {"name": "noise_images", "n": 1200, "channels": 3, "resolution": 16}


def noise_generator(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return lambda k: torch.rand(k, 3, 16, 16, generator=g) * 2 - 1


# --- the contract of every registered metric ---------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(load_metrics()))
def test_every_metric_declares_what_it_needs(name):
    metric = load_metrics()[name]
    assert metric.name == name
    assert metric.help and "\n" not in metric.help
    assert isinstance(metric.higher_is_better, bool)
    assert metric.scope in SCOPES
    for stream in metric.needs:
        assert isinstance(stream, Stream) and stream.source in SOURCES
    if metric.scope == "samples":
        assert metric.needs, "a sample metric reads at least one stream"
        if metric.reference is not None:
            assert any(s.source == metric.reference for s in metric.needs)


def _inception_only(metric) -> bool:
    return metric.scope == "samples" and all(s.source == "inception" for s in metric.needs)


@pytest.mark.parametrize("name", sorted(n for n, m in load_metrics().items() if _inception_only(m)))
def test_every_inception_metric_runs_in_the_one_pass_and_records_its_protocol(name, tmp_path):
    """Each one alone, with the random-weight test extractor: a value, a finite scalar and the resize protocol in
    its protocol; alone it equals what it gives beside every other metric (one shared pass, no cross-talk)."""
    everything = [n for n, m in load_metrics().items() if _inception_only(m)]
    kw = dict(extractor="random-test", device="cpu", cache_dir=tmp_path, kid_subset_size=500, kid_subsets=5)
    alone = compute_metrics(name, noise_generator(), 1000, NOISE, **kw)[name]
    together = compute_metrics(everything, noise_generator(), 1000, NOISE, **kw)[name]
    assert math.isfinite(metric_scalar(name, alone))
    assert alone["protocol"]["resize_protocol"] == "legacy"
    assert alone["protocol"]["n_generated"] == 1000
    assert alone["value"] == together["value"]


def test_a_metric_that_reads_the_run_is_not_computed_from_images_alone():
    with pytest.raises(GankitError, match="infogan"):
        compute_metrics("fid,infogan", noise_generator(), 100, NOISE, extractor="random-test")


# --- density and coverage ------------------------------------------------------------------------------------------

def brute_force_density_coverage(gen: np.ndarray, real: np.ndarray, k: int) -> tuple[float, float]:
    """Naeem et al. 2020, eqs. (3) and (4), with plain loops."""
    n, m = len(real), len(gen)
    radii = []
    for i in range(n):
        dists = sorted(float(np.linalg.norm(real[i] - real[j])) for j in range(n) if j != i)
        radii.append(dists[k - 1])
    inside = 0
    covered = 0
    for i in range(n):
        hit = False
        for j in range(m):
            if np.linalg.norm(gen[j] - real[i]) < radii[i]:
                inside += 1
                hit = True
        covered += hit
    return inside / (k * m), covered / n


@pytest.mark.parametrize("seed,n,m,k", [(0, 40, 30, 5), (1, 25, 60, 3), (2, 12, 12, 1)])
def test_density_coverage_equal_a_brute_force_computation(seed, n, m, k):
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(n, 4))
    gen = rng.normal(loc=0.3, size=(m, 4))
    out = density_coverage(torch.from_numpy(gen).float(), torch.from_numpy(real).float(), k)
    density, coverage = brute_force_density_coverage(gen.astype(np.float32).astype(np.float64),
                                                     real.astype(np.float32).astype(np.float64), k)
    assert out["density"] == pytest.approx(density, abs=1e-12)
    assert out["coverage"] == pytest.approx(coverage, abs=1e-12)


def test_density_coverage_known_cases():
    real = torch.randn(200, 8, generator=torch.Generator().manual_seed(0))
    same = density_coverage(real.clone(), real, 5)
    assert same["coverage"] == 1.0  # each real sample lies in its own ball
    collapsed = density_coverage(real[:1].repeat(200, 1), real, 5)
    assert collapsed["coverage"] <= 0.05  # one point covers only the balls around it
    far = density_coverage(real + 100.0, real, 5)
    assert far == {"density": 0.0, "coverage": 0.0}


def test_density_coverage_need_more_real_samples_than_k():
    with pytest.raises(ValueError, match="more than k"):
        density_coverage(torch.randn(10, 2), torch.randn(5, 2), 5)
    with pytest.raises(GankitError, match="k=5"):
        compute_metrics("density_coverage", noise_generator(), 100, {**NOISE, "n": 5}, extractor="random-test")


# --- the clean resize protocol -------------------------------------------------------------------------------------

@pytest.mark.parametrize("h,w", [(28, 28), (32, 32), (64, 48), (400, 350)])
def test_clean_resize_equals_pil_bicubic_in_float_mode(h, w):
    from PIL import Image

    rng = np.random.default_rng(h * w)
    x = rng.integers(0, 256, (2, 3, h, w), dtype=np.uint8)
    ours = clean_resize(torch.from_numpy(x)).numpy()
    pil = np.stack([np.stack([
        np.asarray(Image.fromarray(x[i, c].astype(np.float32), mode="F").resize((299, 299), Image.BICUBIC))
        for c in range(3)]) for i in range(2)]).clip(0, 255)
    assert ours.shape == (2, 3, 299, 299) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, pil, rtol=0, atol=1e-3)


def test_bicubic_weights_keep_constant_images_constant():
    for a, b in [(32, 299), (512, 299), (299, 299)]:
        w = pil_bicubic_weights(a, b)
        torch.testing.assert_close(w.sum(1), torch.ones(b, dtype=torch.float64))


def test_the_clean_protocol_is_recorded_and_changes_the_numbers(tmp_path):
    kw = dict(extractor="random-test", device="cpu", cache_dir=tmp_path)
    legacy = compute_metrics("fid", noise_generator(), 300, {**NOISE, "n": 300}, **kw)["fid"]
    clean = compute_metrics("fid", noise_generator(), 300, {**NOISE, "n": 300}, resize_protocol="clean",
                            **kw)["fid"]
    assert clean["protocol"]["resize_protocol"] == "clean" and "PIL-bicubic" in clean["protocol"]["resize"]
    assert legacy["protocol"]["resize_protocol"] == "legacy"
    assert clean["value"] != legacy["value"]
    assert len(list(tmp_path.glob("*.pt"))) == 2  # reference statistics cached per protocol
    with pytest.raises(GankitError, match="resize protocol 'sharp'"):
        compute_metrics("fid", noise_generator(), 300, NOISE, resize_protocol="sharp", **kw)


def test_a_bad_eval_protocol_is_one_line(tmp_path):
    result = run_cli("train", "ring_gan", *FAST, "train.steps=2", "eval.protocol=sharp", "--out", str(tmp_path / "r"))
    assert_user_error(result, "eval.protocol")
    assert not (tmp_path / "r").exists()


def test_gankit_eval_protocol_choices_are_one_line(tmp_path):
    result = run_cli("eval", str(tmp_path), "--protocol", "sharp")
    assert_user_error(result, "--protocol")
