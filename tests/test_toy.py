"""Toy mixtures and their mode metrics."""
import math

import pytest
import torch

from gankit.data.toy import grid, grid_means, ring, ring_means
from gankit.metrics.toy import toy_metrics


def test_ring_means_are_distinct_and_evenly_spaced():
    means = ring_means(8, 1.0)
    assert len(torch.unique(means.round(decimals=5), dim=0)) == 8
    angles = torch.atan2(means[:, 1], means[:, 0]).remainder(2 * math.pi)
    torch.testing.assert_close(angles, torch.arange(8) * 2 * math.pi / 8, atol=1e-6, rtol=0)
    torch.testing.assert_close(means.norm(dim=1), torch.ones(8))


def test_grid_means_follow_pacgan():
    means = grid_means(5, 2.0)
    assert sorted(set(means[:, 0].tolist())) == [-4, -2, 0, 2, 4] and len(means) == 25


def test_mixture_samples_sit_on_their_modes_and_are_fixed_by_the_data_seed():
    data = ring(n=20_000, std=0.01)
    dist = torch.cdist(data.x, data.info["means"]).min(dim=1).values
    assert dist.mean().item() == pytest.approx(0.01 * math.sqrt(math.pi / 2), rel=0.05)  # Rayleigh mean
    assert torch.equal(ring(n=100).x, ring(n=100).x) and not torch.equal(ring(n=100).x, ring(n=100, seed=1).x)
    assert grid(n=10).x.shape == (10, 2)


def test_metrics_of_the_data_itself():
    data = grid(n=25_000)
    m = toy_metrics(data.x, data.info["means"], data.info["std"])
    assert m["modes"] == 25 and m["high_quality"] > 0.98 and m["reverse_kl"] < 0.01


def test_metrics_of_a_collapsed_generator():
    means = ring_means(8, 1.0)
    samples = means[3] + 0.01 * torch.randn(1000, 2)
    m = toy_metrics(samples, means, 0.01)
    assert m["modes"] == 1 and m["reverse_kl"] == pytest.approx(math.log(8))


def test_metrics_closed_form_two_modes_of_four():
    means = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    samples = torch.cat([means[0].expand(300, 2), means[1].expand(100, 2), torch.full((100, 2), 5.0)])
    m = toy_metrics(samples, means, 0.1)
    # 400 of 500 samples are on a mean; the 100 far ones still count in the nearest-mode histogram.
    assert m["modes"] == 2 and m["high_quality"] == pytest.approx(0.8)
    hist = torch.bincount(torch.cdist(samples, means).argmin(1), minlength=4).double() / 500
    expected = sum(p * math.log(4 * p) for p in hist.tolist() if p > 0)
    assert m["reverse_kl"] == pytest.approx(expected)


def test_non_finite_samples_are_not_high_quality():
    means = ring_means(8, 1.0)
    samples = torch.full((10, 2), float("nan"))
    m = toy_metrics(samples, means, 0.01)
    assert m["modes"] == 0 and m["high_quality"] == 0.0


def test_balanced_mixture_has_exactly_n_over_k_points_per_mode():
    from gankit.data.toy import grid, ring

    data = ring(radius=10 / 15, std=0.5 / 15, n=3200, balanced=True)  # the reference Ring8
    assert torch.bincount(data.labels).tolist() == [400] * 8
    assert torch.bincount(grid(spacing=5 / 15, std=0.5 / 15, n=10000, balanced=True).labels).tolist() == [400] * 25
    assert data.x.abs().max() < 1.0  # inside the tanh output's range, as the reference's scaling by 1/15


def test_precision_auto_is_fp32_for_2d_data_on_every_device(monkeypatch):
    """bf16 rounding in the hidden layers is as wide as a 0.01-std mode: auto never picks it for toy data, even
    where the device computes bf16 natively (images: tests/test_precision.py)."""
    from gankit import config, experiment, precision

    monkeypatch.setattr(precision, "native_bf16", lambda device: True)
    monkeypatch.delenv(precision.CPU_PRECISION_ENV, raising=False)
    for device in ("cpu", "cuda"):
        assert precision.resolve_precision("auto", torch.device(device), "toy") == torch.float32
    exp = experiment.Experiment(config.load(None, ["train.steps=1"]))
    assert exp.compute_dtype == torch.float32 and exp.cfg.train.precision == "auto"
