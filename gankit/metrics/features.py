"""The metric formulas on feature vectors and logits, in torch (on the features' device, float64 where it
matters). They follow torch-fidelity's definitions, sampling and seeds (tests compare them with its functions on
the same inputs); torch-fidelity itself runs them in numpy on the CPU, too slow for 50,000 samples.

* ``frechet_distance``: ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)), with the trace of the matrix
  square root computed as the sum of sqrt(eigenvalues) of the symmetric PSD matrix S1^(1/2) S2 S1^(1/2)
  (stable for singular or nearly singular covariances).
* ``inception_score``: exp(E_x KL(p(y|x) || p(y))) per split, mean and std over splits (shuffled by a fixed
  seed, as torch-fidelity).
* ``kernel_distance`` (KID): unbiased MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, mean and
  std over random subsets.
* ``precision_recall`` (Kynkaanniemi et al. 2019): a generated sample counts for precision when it lies within
  the k-th nearest neighbour radius of some real sample; a real sample counts for recall when it lies within the
  k-NN radius of some generated sample.
* ``density_coverage`` (Naeem et al. 2020): with r_i the distance from real sample X_i to its k-th nearest other
  real sample, density = 1/(kM) sum_j #{i : |Y_j - X_i| < r_i} and coverage = the fraction of real samples with
  some generated sample closer than r_i (strict inequalities, as the authors' code).
* ``class_histogram``: counts of predicted classes, classes covered, KL(p || uniform).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

IS_SPLITS = 10
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
KID_DEGREE = 3
KID_COEF0 = 1.0
PRC_K = 3
DC_K = 5  # Naeem et al. 2020, section 4: k = 5
SEED = 2020  # torch-fidelity's default rng_seed


def feature_statistics(features: Tensor, chunk: int = 8192) -> tuple[Tensor, Tensor]:
    """Mean and unbiased covariance (as np.cov) of [N, D] features, in float64, computed in chunks."""
    n = features.shape[0]
    if n < 2:
        raise ValueError("the covariance needs at least 2 feature vectors")
    mu = torch.zeros(features.shape[1], dtype=torch.float64, device=features.device)
    for part in features.split(chunk):
        mu += part.double().sum(0)
    mu /= n
    cov = torch.zeros(features.shape[1], features.shape[1], dtype=torch.float64, device=features.device)
    for part in features.split(chunk):
        centred = part.double() - mu
        cov += centred.T @ centred
    return mu, cov / (n - 1)


def _sqrt_psd(matrix: Tensor) -> Tensor:
    vals, vecs = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (vecs * vals.clamp_min(0).sqrt()) @ vecs.T


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
    """The Frechet distance between N(mu1, sigma1) and N(mu2, sigma2) (float64; inputs on any one device)."""
    mu1, mu2 = torch.as_tensor(mu1).double(), torch.as_tensor(mu2).double().to(torch.as_tensor(mu1).device)
    sigma1 = torch.as_tensor(sigma1).double().to(mu1.device)
    sigma2 = torch.as_tensor(sigma2).double().to(mu1.device)
    root1 = _sqrt_psd(sigma1)
    middle = root1 @ sigma2 @ root1
    tr_covmean = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0).sqrt().sum()
    diff = mu1 - mu2
    return float(diff @ diff + torch.trace(sigma1) + torch.trace(sigma2) - 2 * tr_covmean)


def inception_score(logits: Tensor, splits: int = IS_SPLITS, shuffle: bool = True, seed: int = SEED
                    ) -> tuple[float, float]:
    """Mean and std over ``splits`` of exp(mean_x KL(p(y|x) || mean_x p(y|x))), p = softmax(logits)."""
    n = logits.shape[0]
    if shuffle:
        logits = logits[torch.from_numpy(np.random.RandomState(seed).permutation(n)).to(logits.device)]
    log_p = logits.double().log_softmax(dim=1)
    p = log_p.exp()
    scores = []
    for i in range(splits):
        lo, hi = i * n // splits, (i + 1) * n // splits
        log_q = p[lo:hi].mean(0, keepdim=True).log()
        kl = (p[lo:hi] * (log_p[lo:hi] - log_q)).nan_to_num(0.0).sum(1).mean()  # 0 log 0 = 0
        scores.append(float(kl.exp()))
    return float(np.mean(scores)), float(np.std(scores))


def _mmd2_unbiased(k_xx: Tensor, k_xy: Tensor, k_yy: Tensor) -> float:
    m = k_xx.shape[0]
    f64 = torch.float64
    sum_xx = k_xx.sum(dtype=f64) - k_xx.diagonal().sum(dtype=f64)
    sum_yy = k_yy.sum(dtype=f64) - k_yy.diagonal().sum(dtype=f64)
    return float((sum_xx + sum_yy) / (m * (m - 1)) - 2 * k_xy.sum(dtype=f64) / (m * m))


def kernel_distance(gen: Tensor, real: Tensor, subsets: int = KID_SUBSETS, subset_size: int = KID_SUBSET_SIZE,
                    degree: int = KID_DEGREE, coef0: float = KID_COEF0, seed: int = SEED) -> tuple[float, float]:
    """KID: mean and std over ``subsets`` random subsets (without replacement, ``subset_size`` from each side)
    of the unbiased MMD^2 with the kernel (x.y / d + coef0)^degree. Subsets are drawn exactly as torch-fidelity
    draws them (numpy RandomState(seed), generated then real, per subset)."""
    if len(gen) < subset_size or len(real) < subset_size:
        raise ValueError(f"KID subset size {subset_size} exceeds the samples ({len(gen)} generated, {len(real)} real)")
    gamma = 1.0 / gen.shape[1]
    rng = np.random.RandomState(seed)
    real = real.to(gen.device)
    mmds = []
    for _ in range(subsets):
        x = gen[torch.from_numpy(rng.choice(len(gen), subset_size, replace=False)).to(gen.device)].float()
        y = real[torch.from_numpy(rng.choice(len(real), subset_size, replace=False)).to(gen.device)].float()

        def kernel(a: Tensor, b: Tensor) -> Tensor:  # float32 as torch-fidelity's numpy; sums in float64
            return (a @ b.T).mul_(gamma).add_(coef0).pow_(degree)

        mmds.append(_mmd2_unbiased(kernel(x, x), kernel(x, y), kernel(y, y)))
    return float(np.mean(mmds)), float(np.std(mmds))


def _kth_radius(x: Tensor, k: int, batch: int) -> Tensor:
    """Distance of each row of x to its k-th nearest other row (the row itself is the 0th)."""
    return torch.cat([torch.cdist(part, x).kthvalue(k + 1, dim=1).values for part in x.split(batch)])


def _inside_any(points: Tensor, centres: Tensor, radii: Tensor, batch: int) -> Tensor:
    out = []
    for part in points.split(batch):
        out.append((torch.cdist(part, centres) <= radii[None, :]).any(dim=1))
    return torch.cat(out)


def precision_recall(gen: Tensor, real: Tensor, k: int = PRC_K, batch: int = 10_000) -> dict[str, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) with k-NN radii, on the features' device."""
    real = real.to(gen.device).float()
    gen = gen.float()
    precision = float(_inside_any(gen, real, _kth_radius(real, k, batch), batch).double().mean())
    recall = float(_inside_any(real, gen, _kth_radius(gen, k, batch), batch).double().mean())
    f_score = 2 * precision * recall / max(1e-5, precision + recall)
    return {"precision": precision, "recall": recall, "f_score": f_score}


def _rows_per_chunk(columns: int, budget: int = 1 << 25) -> int:
    """Rows of a [rows, columns] distance block within ``budget`` elements (256 MB in float64)."""
    return max(1, budget // max(1, columns))


def density_coverage(gen: Tensor, real: Tensor, k: int = DC_K) -> dict[str, float]:
    """Density and coverage (Naeem et al., ICML 2020) of generated features ``gen`` [M, D] against real features
    ``real`` [N, D], on ``gen``'s device, in float64 (no TF32, no cancellation in the distances), block by block
    so that 10,000 x 10,000 fits in memory. k >= N is a ValueError (a k-th other neighbour needs N > k)."""
    n, m = len(real), len(gen)
    if not 1 <= k < n:
        raise ValueError(f"density/coverage with k={k} need more than k real samples, got {n}")
    if m < 1:
        raise ValueError("density/coverage need at least one generated sample")
    real = real.to(gen.device, torch.float64)
    gen = gen.to(torch.float64)
    rows = _rows_per_chunk(n)
    # r_i: the (k+1)-th smallest distance from X_i to the real set, the 0th being X_i itself
    radii = torch.cat([torch.cdist(part, real).kthvalue(k + 1, dim=1).values for part in real.split(rows)])
    inside_count = torch.zeros((), dtype=torch.float64, device=gen.device)
    covered = torch.zeros(n, dtype=torch.bool, device=gen.device)
    for part in gen.split(rows):
        inside = torch.cdist(part, real) < radii[None, :]  # [rows, N]: Y_j in the k-NN ball of X_i
        inside_count += inside.sum(dtype=torch.float64)
        covered |= inside.any(dim=0)
    return {"density": float(inside_count / (k * m)), "coverage": float(covered.double().mean())}


def class_histogram(predicted: Tensor, n_classes: int, class_names: list[str] | None = None) -> dict[str, Any]:
    """The histogram of predicted classes, the number of classes predicted at least once, and
    KL(p || uniform) = sum_c p_c log(C p_c) (0 when balanced, log C when one class takes everything)."""
    counts = torch.bincount(predicted.flatten().long().cpu(), minlength=n_classes).double()
    p = counts / counts.sum().clamp_min(1)
    kl = torch.where(p > 0, p * torch.log(n_classes * p), torch.zeros_like(p)).sum()
    out: dict[str, Any] = {"histogram": [int(c) for c in counts.tolist()], "classes_covered": int((counts > 0).sum()),
                           "n_classes": n_classes, "kl_to_uniform": float(kl),
                           "max_kl": math.log(n_classes)}
    if class_names:
        out["class_names"] = list(class_names)
    return out
