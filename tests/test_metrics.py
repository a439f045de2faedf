"""Metric formulas against closed forms and torch-fidelity's own functions; the compute_metrics pipeline with the
random-weight test extractor (no Inception weights, no network); bad input."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from gankit.errors import GankitError
from gankit.metrics import (
    metric_names,
    class_histogram,
    compute_metrics,
    feature_statistics,
    frechet_distance,
    inception_score,
    kernel_distance,
    precision_recall,
)
from gankit.metrics import extractors as ext

tf_fid = pytest.importorskip("torch_fidelity.metric_fid")
from torch_fidelity.metric_isc import isc_features_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric
from torch_fidelity.metric_prc import prc_features_to_metric

NOISE = {"name": "noise_images", "n": 1200, "channels": 3, "resolution": 16}


def rotation(d: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q


def closed_form(mu1, a, mu2, b) -> float:
    """FID of N(mu1, Q diag(a) Q^T) and N(mu2, Q diag(b) Q^T): commuting covariances, so that
    sqrt(S1 S2) = Q diag(sqrt(ab)) Q^T."""
    return float(((mu1 - mu2) ** 2).sum() + a.sum() + b.sum() - 2 * (a * b).sqrt().sum())


# --- Frechet distance --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("nearly_singular", [False, True])
def test_frechet_distance_closed_form(nearly_singular):
    d = 32
    q = rotation(d, 0)
    g = torch.Generator().manual_seed(1)
    a = torch.rand(d, generator=g, dtype=torch.float64) * 3 + 0.1
    b = torch.rand(d, generator=g, dtype=torch.float64) * 2 + 0.1
    if nearly_singular:  # rank-deficient up to 1e-12: the eigenvalues of S1 S2 are ~1e-24 there
        a[: d // 2] = 1e-12
        b[d // 4:] = 1e-12
    mu1 = torch.randn(d, generator=g, dtype=torch.float64)
    mu2 = torch.randn(d, generator=g, dtype=torch.float64)
    s1, s2 = q @ torch.diag(a) @ q.T, q @ torch.diag(b) @ q.T
    expected = closed_form(mu1, a, mu2, b)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert frechet_distance(mu2, s2, mu1, s1) == pytest.approx(expected, rel=1e-9, abs=1e-9)
    # identical inputs: 0 up to the square roots of ~1e-16 rounding errors of tiny eigenvalues (1e-8 each)
    assert abs(frechet_distance(mu1, s1, mu1, s1)) < (1e-6 if nearly_singular else 1e-9)
    if nearly_singular:  # torch-fidelity's non-symmetric eigvals route agrees on the same statistics
        ref = tf_fid.fid_statistics_to_metric({"mu": mu1.numpy(), "sigma": s1.numpy()},
                                              {"mu": mu2.numpy(), "sigma": s2.numpy()}, False)
        assert ref[tf_fid.KEY_METRIC_FID] == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_of_gaussian_samples_and_torch_fidelity():
    d, n = 16, 20_000
    g = torch.Generator().manual_seed(2)
    q = rotation(d, 3)
    a = torch.rand(d, generator=g, dtype=torch.float64) + 0.5
    b = torch.rand(d, generator=g, dtype=torch.float64) + 0.5
    mu2 = torch.full((d,), 0.3, dtype=torch.float64)
    x = (torch.randn(n, d, generator=g, dtype=torch.float64) * a.sqrt()) @ q.T
    y = (torch.randn(n, d, generator=g, dtype=torch.float64) * b.sqrt()) @ q.T + mu2
    x, y = x.float(), y.float()
    mx, sx = feature_statistics(x, chunk=3000)
    my, sy = feature_statistics(y)
    # statistics equal torch-fidelity's (np.mean, np.cov) ...
    ref_x = tf_fid.fid_features_to_statistics(x)
    np.testing.assert_allclose(mx.numpy(), ref_x["mu"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sx.numpy(), ref_x["sigma"], rtol=1e-5, atol=1e-6)
    # ... the distance equals torch-fidelity's on the same statistics ...
    ref = tf_fid.fid_statistics_to_metric(ref_x, tf_fid.fid_features_to_statistics(y), False)
    assert frechet_distance(mx, sx, my, sy) == pytest.approx(ref[tf_fid.KEY_METRIC_FID], rel=1e-6, abs=1e-8)
    # ... and approaches the closed form of the generating Gaussians
    assert frechet_distance(mx, sx, my, sy) == pytest.approx(closed_form(torch.zeros(d), a, mu2, b), abs=0.02)


def test_frechet_distance_on_non_commuting_covariances_matches_torch_fidelity():
    d = 24
    g = torch.Generator().manual_seed(4)
    f1 = torch.randn(300, d, generator=g) @ torch.randn(d, d, generator=g)
    f2 = torch.randn(300, d, generator=g) * 2 + 1
    s1, s2 = tf_fid.fid_features_to_statistics(f1), tf_fid.fid_features_to_statistics(f2)
    ref = tf_fid.fid_statistics_to_metric(s1, s2, False)[tf_fid.KEY_METRIC_FID]
    ours = frechet_distance(torch.from_numpy(s1["mu"]), torch.from_numpy(s1["sigma"]),
                            torch.from_numpy(s2["mu"]), torch.from_numpy(s2["sigma"]))
    assert ours == pytest.approx(ref, rel=1e-7)


# --- Inception Score -------------------------------------------------------------------------------------------

def test_inception_score_known_values():
    n, c = 1000, 10
    confident = torch.nn.functional.one_hot(torch.arange(n) % c, c).double() * 100
    mean, std = inception_score(confident, splits=10, shuffle=False)  # every split holds 10 of each class
    assert mean == pytest.approx(10.0, rel=1e-9) and std == pytest.approx(0.0, abs=1e-9)
    one_class = torch.zeros(n, c)
    one_class[:, 3] = 100
    assert inception_score(one_class)[0] == pytest.approx(1.0, abs=1e-9)
    assert inception_score(torch.zeros(n, c))[0] == pytest.approx(1.0, abs=1e-12)  # uniform predictions
    # half the classes, equally often: IS = 5
    assert inception_score(torch.nn.functional.one_hot(torch.arange(n) % 5, c).double() * 100, 10, False)[0] \
        == pytest.approx(5.0, rel=1e-9)


def test_inception_score_matches_torch_fidelity():
    logits = torch.randn(2000, 1008, generator=torch.Generator().manual_seed(5)) * 3
    ref = isc_features_to_metric(logits, splits=10, shuffle=True, rng_seed=2020)
    mean, std = inception_score(logits)
    assert mean == pytest.approx(ref["inception_score_mean"], rel=1e-9)
    assert std == pytest.approx(ref["inception_score_std"], rel=1e-6, abs=1e-12)


# --- KID ---------------------------------------------------------------------------------------------------------

def test_kid_known_values():
    d = 8
    a, b = torch.full((50, d), 0.5), torch.full((60, d), -0.25)

    def k(x, y):
        return (x * y * d / d + 1.0) ** 3  # x.y / d + 1 with constant vectors

    expected = k(0.5, 0.5) + k(-0.25, -0.25) - 2 * k(0.5, -0.25)
    mean, std = kernel_distance(a, b, subsets=5, subset_size=40)
    assert mean == pytest.approx(expected, rel=1e-6) and std == pytest.approx(0.0, abs=1e-6)
    same, _ = kernel_distance(a, a.clone(), subsets=3, subset_size=40)
    assert same == pytest.approx(0.0, abs=1e-6)


def test_kid_matches_torch_fidelity():
    g = torch.Generator().manual_seed(6)
    x = torch.randn(600, 64, generator=g).relu()
    y = torch.randn(700, 64, generator=g).relu() * 1.1 + 0.05
    ref = kid_features_to_metric(x, y, kid_subsets=20, kid_subset_size=300, verbose=False)
    mean, std = kernel_distance(x, y, subsets=20, subset_size=300)
    assert mean == pytest.approx(ref["kernel_inception_distance_mean"], rel=1e-4)
    assert std == pytest.approx(ref["kernel_inception_distance_std"], rel=1e-3)


# --- precision / recall ----------------------------------------------------------------------------------------

def test_precision_recall_constructed_cases():
    g = torch.Generator().manual_seed(7)
    real = torch.randn(200, 5, generator=g)
    assert precision_recall(real.clone(), real) == pytest.approx({"precision": 1.0, "recall": 1.0, "f_score": 1.0})
    far = torch.randn(200, 5, generator=g) * 0.1 + 100
    out = precision_recall(far, real)
    assert out["precision"] == 0.0 and out["recall"] == 0.0
    half = torch.cat([real[:100], far[:100]])  # copies of real samples (inside) and far-away samples (outside)
    assert precision_recall(half, real)["precision"] == pytest.approx(0.5)


def test_precision_recall_matches_torch_fidelity():
    g = torch.Generator().manual_seed(8)
    fake = torch.randn(400, 16, generator=g) * 1.3
    real = torch.randn(500, 16, generator=g) + 0.2
    ref = prc_features_to_metric(fake, real, prc_neighborhood=3, prc_batch_size=10000, save_cpu_ram=False,
                                 verbose=False)
    ours = precision_recall(fake, real, k=3, batch=128)
    for key in ("precision", "recall", "f_score"):
        assert ours[key] == pytest.approx(ref[key], abs=1e-6), key  # theirs is a float32 mean


def test_class_histogram():
    out = class_histogram(torch.tensor([0, 0, 1, 1]), 4)
    assert out["histogram"] == [2, 2, 0, 0] and out["classes_covered"] == 2
    assert out["kl_to_uniform"] == pytest.approx(math.log(2))
    assert class_histogram(torch.arange(10), 10)["kl_to_uniform"] == pytest.approx(0.0, abs=1e-12)
    assert class_histogram(torch.zeros(7, dtype=torch.long), 10)["kl_to_uniform"] == pytest.approx(math.log(10))


# --- the pipeline, with the random-weight test extractor ------------------------------------------------------

def noise_generator(shape=(3, 16, 16), seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return lambda k: (torch.rand(k, *shape, generator=g) * 2 - 1) * scale


def test_pipeline_with_random_extractor_and_cache(tmp_path):
    timings: dict[str, float] = {}
    kwargs = {"extractor": "random-test", "cache_dir": tmp_path, "batch_size": 300, "kid_subsets": 5, "device": "cpu"}
    result = compute_metrics("fid,is,kid,prc", noise_generator(), 1000, NOISE, timings=timings,
                             protocol={"weights": "ema", "step": 1234}, **kwargs)
    assert list(result) == ["fid", "is", "kid", "prc"]
    json.loads(json.dumps(result))
    for name, entry in result.items():
        proto = entry["protocol"]
        assert proto["extractor_name"] == "random-test" and proto["n_generated"] == 1000
        assert proto["weights"] == "ema" and proto["step"] == 1234
        if name != "is":
            assert proto["reference"] == "noise_images" and proto["n_reference"] == 1200
    assert result["kid"]["protocol"]["subset_size"] == 1000 and result["kid"]["protocol"]["subsets"] == 5
    assert result["prc"]["protocol"]["k"] == 3
    assert set(result["prc"]["value"]) == {"precision", "recall", "f_score"}
    assert 0 <= result["fid"]["value"] < 1 and result["is"]["value"] >= 1  # uniform noise vs uniform noise
    assert set(timings) == {"setup", "generated features", "reference statistics", "metrics"}
    # reference statistics were cached: one file, tensors only
    files = list(tmp_path.glob("noise_images-all-random-test-1200-*.pt"))
    assert len(files) == 1
    blob = torch.load(files[0], weights_only=True)
    assert blob["features"].shape == (1200, 64) and blob["sigma"].dtype == torch.float64
    # a second run reads them (same numbers), and a different generator gives a larger FID
    again = compute_metrics(["fid"], noise_generator(), 1000, NOISE, **kwargs)
    assert again["fid"]["value"] == pytest.approx(result["fid"]["value"], rel=1e-9)
    worse = compute_metrics(["fid"], noise_generator(scale=0.3), 1000, NOISE, **kwargs)
    assert worse["fid"]["value"] > 10 * result["fid"]["value"]
    assert len(list(tmp_path.glob("*.pt"))) == 1


def test_cache_key_depends_on_the_split(tmp_path, monkeypatch):
    from gankit.metrics import compute

    calls = []
    real = compute.reference_statistics

    def spy(data, spec, *a, **k):
        calls.append(spec.get("split"))
        return real(data, spec, *a, **k)

    monkeypatch.setattr(compute, "reference_statistics", spy)
    kwargs = {"extractor": "random-test", "cache_dir": tmp_path, "device": "cpu"}
    compute_metrics(["fid"], noise_generator(), 50, NOISE, n_reference=100, **kwargs)
    compute_metrics(["fid"], noise_generator(), 50, {**NOISE, "seed": 1}, n_reference=100, **kwargs)
    assert len(list(tmp_path.glob("*.pt"))) == 2  # different content, different file


# --- bad input ---------------------------------------------------------------------------------------------------

def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_unknown_metric_lists_the_valid_ones():
    with pytest.raises(GankitError) as exc:
        compute_metrics("fid,fld", noise_generator(), 100, NOISE, extractor="random-test")
    assert "unknown metric 'fld'" in one_line(exc)
    for name in metric_names():
        assert name in str(exc.value)


@pytest.mark.parametrize("names,n,needle", [("kid", 999, "KID subset size 1000"), ("fid", 1, ">= 2"),
                                             ("is", 5, "10 splits"), ("prc", 3, "k=3")])
def test_too_few_samples(names, n, needle):
    def never(k):
        raise AssertionError("must fail before generating")

    with pytest.raises(GankitError) as exc:
        compute_metrics(names, never, n, NOISE, extractor="random-test")
    assert needle in one_line(exc)


def test_reference_smaller_than_kid_subset():
    with pytest.raises(GankitError) as exc:
        compute_metrics("kid", noise_generator(), 1000, {**NOISE, "n": 500}, extractor="random-test")
    assert "reference noise_images" in one_line(exc) and "KID subset size" in str(exc.value)


def test_unknown_split_and_dataset_without_splits():
    with pytest.raises(GankitError) as exc:
        compute_metrics("fid", noise_generator(), 100, {"name": "mnist"}, split="val", extractor="random-test")
    assert "no split 'val'" in one_line(exc) and "train, test" in str(exc.value)
    with pytest.raises(GankitError) as exc:
        compute_metrics("fid", noise_generator(), 100, NOISE, split="test", extractor="random-test")
    assert "has no splits" in one_line(exc)


def test_generated_shape_must_match_reference(tmp_path):
    with pytest.raises(GankitError) as exc:
        compute_metrics("fid", noise_generator((3, 32, 32)), 100, NOISE, extractor="random-test", cache_dir=tmp_path)
    assert "3x32x32" in one_line(exc) and "3x16x16" in str(exc.value)


def test_classifier_metrics_need_mnist_like_data():
    with pytest.raises(GankitError) as exc:
        compute_metrics("cs", noise_generator(), 100, NOISE)
    assert "mnist" in one_line(exc) and "noise_images" in str(exc.value)


def test_unknown_extractor():
    with pytest.raises(GankitError) as exc:
        compute_metrics("fid", noise_generator(), 100, NOISE, extractor="vgg")
    assert "random-test" in one_line(exc)


# --- Inception weights ---------------------------------------------------------------------------------------------

def test_missing_inception_weights_name_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(ext.WEIGHTS_ENV, raising=False)
    with pytest.raises(GankitError) as exc:
        compute_metrics("fid", noise_generator(), 100, NOISE, download=False)
    line = one_line(exc)
    assert ext.INCEPTION_FILE in line and str(tmp_path / "torch" / "hub" / "checkpoints") in line
    assert "--inception-weights" in line and ext.WEIGHTS_ENV in line
    with pytest.raises(GankitError) as exc:
        compute_metrics("fid", noise_generator(), 100, NOISE, inception_weights=tmp_path / "nope.pth")
    assert "does not exist" in one_line(exc)
    monkeypatch.setenv(ext.WEIGHTS_ENV, str(tmp_path / "nope.pth"))
    with pytest.raises(GankitError) as exc:
        compute_metrics("fid", noise_generator(), 100, NOISE)
    assert ext.WEIGHTS_ENV in one_line(exc)
    bad = tmp_path / "bad.pth"
    torch.save({"x": torch.zeros(1)}, bad)
    with pytest.raises(GankitError) as exc:
        compute_metrics("fid", noise_generator(), 100, NOISE, inception_weights=bad)
    assert "not torch-fidelity's Inception-v3" in one_line(exc)


def test_torch_fidelity_inception_runs_from_a_local_file(tmp_path, monkeypatch):
    """The real network (random weights written locally, so no download): uint8 in, 2048 + 1008 out."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    path = ext.write_random_inception_weights(tmp_path / "w.pth")
    model = ext.build_extractor("inception-v3-compat", torch.device("cpu"), path, download=False)
    assert "NON-STANDARD" in model.describe and model.feature_layer == "2048"
    feats, logits = model(torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8))  # grayscale -> RGB
    assert feats.shape == (2, 2048) and logits.shape == (2, 1008)
