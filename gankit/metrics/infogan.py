"""The ``infogan`` metric: how well an InfoGAN run's categorical code captured the classes, and Q's estimate of the
mutual information.

On n fresh samples x = G(z, c) (codes drawn from the prior, seeded):

* ``value``: the categorical code's accuracy against gankit's shipped MNIST / Fashion-MNIST classifier under the
  best one-to-one matching of code values to classes (``matching``; ``per_code_accuracy`` for each value): with
  N[k, d] the number of samples of code value k that the classifier calls d, value = max over bijections pi of
  sum_k N[k, pi(k)] / n (Hungarian algorithm). Samples go to the classifier quantized to uint8 as saved PNGs,
  resized to 28x28 (antialiased bilinear, as the data loader) when the run's images are larger; the paper
  reports about 5% error (0.95) on MNIST;
* ``mi_categorical``: Q's lower bound on I(c; G(z, c)) for the categorical codes, H(c) - CE, with H(c) = sum of
  log K and CE Q's mean cross-entropy on these samples (nats; at most H(c) = log 10 = 2.303 for one 10-way code);
* ``q_accuracy``: how often Q's argmax recovers the categorical code it generated from;
* ``continuous_mse``: Q's mean squared error on each continuous code;
* ``q_real_accuracy``: Q as an unsupervised classifier of the real test split (labels from the data), under the
  best matching of Q's values to the labels: the paper's "5% error" protocol.

Q runs with D in eval mode (batch norm uses its running statistics).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from gankit.data.base import to_uint8
from gankit.errors import GankitError
from gankit.metrics.base import Metric, RunRequest, register_metric

CLASSIFIER_DATA = ("mnist", "fashion_mnist")


def best_matching(counts: Tensor) -> list[int]:
    """The assignment of rows to distinct columns that maximises the matched counts (Hungarian algorithm, the
    O(n^3) potentials form; rows <= columns). ``result[k]`` is row k's column. scipy's linear_sum_assignment
    gives the same optimum."""
    score = counts.double().cpu()
    n, m = score.shape
    if n > m:
        raise ValueError(f"best_matching needs rows <= columns, got {n} x {m}")
    cost = (score.max() - score).tolist() if score.numel() else []
    inf = float("inf")
    u, v = [0.0] * (n + 1), [0.0] * (m + 1)
    match = [0] * (m + 1)  # match[j]: the row (1-based) assigned to column j, 0 for none
    way = [0] * (m + 1)
    for i in range(1, n + 1):
        match[0], j0 = i, 0
        minv, used = [inf] * (m + 1), [False] * (m + 1)
        while True:
            used[j0] = True
            i0, delta, j1 = match[j0], inf, 0
            for j in range(1, m + 1):
                if not used[j]:
                    cur = cost[i0 - 1][j - 1] - u[i0] - v[j]
                    if cur < minv[j]:
                        minv[j], way[j] = cur, j0
                    if minv[j] < delta:
                        delta, j1 = minv[j], j
            for j in range(m + 1):
                if used[j]:
                    u[match[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if match[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            match[j0] = match[j1]
            j0 = j1
    result = [0] * n
    for j in range(1, m + 1):
        if match[j]:
            result[match[j] - 1] = j - 1
    return result


def matched_accuracy(counts: Tensor) -> tuple[float, list[int]]:
    """(accuracy under the best one-to-one matching of rows to columns, the matching) of a count matrix."""
    total = float(counts.sum())
    if total == 0:
        return 0.0, list(range(counts.shape[0]))
    mapping = best_matching(counts)
    return sum(float(counts[k, c]) for k, c in enumerate(mapping)) / total, mapping


def check_infogan_run(exp: Any) -> None:
    """The infogan metric needs a Q head, a categorical code and data with a shipped classifier."""
    if getattr(exp.discriminator, "q_head", None) is None or not exp.prior.has_categorical:
        raise GankitError("infogan is for InfoGAN runs (model.codes.categorical and model.discriminator.q_head)")
    if exp.data.kind != "image" or exp.cfg.data["name"] not in CLASSIFIER_DATA:
        raise GankitError(f"infogan uses gankit's classifiers, which exist for {' and '.join(CLASSIFIER_DATA)}, not "
                          f"for '{exp.cfg.data['name']}'; leave it out")
    shape = tuple(exp.data.shape)
    if shape[0] != 1 or shape[1] != shape[2] or shape[1] < 28:
        raise GankitError(f"infogan needs 1-channel square images of at least 28x28 (the classifier's input), got "
                          f"{'x'.join(map(str, shape))}")


def _classifier_input(x: Tensor) -> Tensor:
    """uint8 images as saved to PNG, resized to the classifier's 28x28."""
    from gankit.data.images import resize_images

    images = to_uint8(torch.nan_to_num(x.detach().float(), nan=0.0)).cpu()
    return resize_images(images, 28)


@torch.no_grad()
def infogan_metric(exp: Any, n: int, *, seed: int = 0, batch_size: int = 250, split: str | None = None,
                   n_real: int = 10000, protocol: dict[str, Any] | None = None) -> dict[str, Any]:
    """The infogan metric of a loaded run on n fresh samples (see the module docstring)."""
    from gankit.evaluation import generate_from
    from gankit.metrics.extractors import classifier
    from gankit.models.conditional import as_output

    check_infogan_run(exp)
    codes = exp.prior.codes
    k0 = codes.categorical[0]
    n_cat = sum(codes.categorical)
    device = exp.device
    clf = classifier(exp.cfg.data["name"], device)
    d = exp.discriminator
    was_training = d.training
    d.eval()
    rng = torch.Generator().manual_seed(seed)
    confusion = torch.zeros(k0, 10, dtype=torch.long)
    ce_sum, hits, sq_sum = 0.0, 0, torch.zeros(codes.continuous, dtype=torch.float64)
    try:
        for start in range(0, n, batch_size):
            k = min(batch_size, n - start)
            z = exp.prior.latent(k, device, rng)
            indices, cont = codes.split(z)
            x = generate_from(exp, z, None)
            digits = clf(_classifier_input(x).to(device))[1].argmax(1).cpu()
            confusion += torch.bincount(indices[0].cpu() * 10 + digits, minlength=k0 * 10).view(k0, 10)
            with exp.autocast():
                q = as_output(d(x, None)).heads["q"].float()
            at = 0
            for size, target in zip(codes.categorical, indices):
                ce_sum += float(torch.nn.functional.cross_entropy(q[:, at:at + size], target, reduction="sum"))
                at += size
            hits += int((q[:, :k0].argmax(1) == indices[0]).sum())
            if codes.continuous:
                sq_sum += (q[:, n_cat:] - cont).square().sum(0).double().cpu()
        real = _q_on_real(exp, d, split, n_real, batch_size, k0)
    finally:
        d.train(was_training)
    accuracy, mapping = matched_accuracy(confusion)
    ce = ce_sum / n
    result: dict[str, Any] = {
        "value": accuracy,
        "matching": {str(c): mapping[c] for c in range(k0)},
        # per code value: the fraction of its samples that the classifier calls its matched class
        "per_code_accuracy": [round(float(confusion[c, mapping[c]]) / max(1, int(confusion[c].sum())), 4)
                              for c in range(k0)],
        "mi_categorical": codes.categorical_entropy() - ce,
        "entropy_categorical": codes.categorical_entropy(),
        "q_cross_entropy": ce,
        "q_accuracy": hits / n,
        **real,
    }
    if codes.continuous:
        result["continuous_mse"] = [round(float(v), 6) for v in sq_sum / n]
    result["protocol"] = {
        "n_generated": n, "code": f"categorical code 0 ({k0} values)",
        "classifier": clf.describe, "classifier_test_accuracy": clf.extra.get("test_accuracy"),
        "matching": "best one-to-one matching of code values to classes (Hungarian)",
        "generated_images": "float [-1, 1] quantized to uint8 as when saved to PNG, resized to 28x28",
        "mi": "H(c) - CE(Q), nats, categorical codes", **(protocol or {})}
    return result


def _q_on_real(exp: Any, d: Any, split: str | None, n_real: int, batch_size: int, k0: int) -> dict[str, Any]:
    """Q's argmax on the real test images against their labels, under the best matching (when labelled)."""
    from gankit.metrics.compute import reference_label, resolve_reference
    from gankit.models.conditional import as_output
    from gankit.registry import DATASETS

    spec = resolve_reference(exp.cfg.data, split or "test")
    data = DATASETS.build(spec, "reference")
    if data.labels is None:
        return {}
    n = min(n_real, len(data))
    x_all = data.x[:n] if hasattr(data, "x") else None
    if x_all is None:
        return {}
    labels = data.labels[:n].cpu().long()
    n_classes = max(int(labels.max()) + 1, k0)
    confusion = torch.zeros(k0, n_classes, dtype=torch.long)
    for start in range(0, n, batch_size):
        x = x_all[start:start + batch_size].to(exp.device).float().div(127.5).sub(1)
        with exp.autocast():
            q = as_output(d(x, None)).heads["q"].float()
        pred = q[:, :k0].argmax(1).cpu()
        confusion += torch.bincount(pred * n_classes + labels[start:start + batch_size],
                                    minlength=k0 * n_classes).view(k0, n_classes)
    accuracy, _ = matched_accuracy(confusion if k0 <= n_classes else confusion.T)
    return {"q_real_accuracy": accuracy, "q_real_reference": f"{reference_label(spec)} ({n} images)"}


@register_metric
class InfoGANMetric(Metric):
    name = "infogan"
    help = "InfoGAN runs: the categorical code's accuracy under the best matching to the classifier's digits, Q's MI"
    higher_is_better = True  # its scalar is the matched accuracy
    scope = "run"

    def check_run(self, exp: Any) -> None:
        check_infogan_run(exp)

    def compute_run(self, request: RunRequest) -> dict[str, Any]:
        return infogan_metric(request.exp, request.n, seed=request.seed, batch_size=request.batch_size,
                              split=request.split, protocol=request.protocol)
