"""Small CNN classifiers for MNIST and Fashion-MNIST, shipped as package data (gankit/metrics/weights/).

They give offline, download-free metrics for 1x28x28 data: a Frechet distance in the classifier's 128-d
feature space ("cfd"), the classifier score ("cs", the Inception Score formula with this classifier) and the
class histogram of the samples ("classes"). Trained by ``scripts/train_classifiers.py`` (seeded).

Architecture (input: 1x28x28 in [-1, 1], the generator's range):
    conv3x3(1->32) BN ReLU maxpool2 -> conv3x3(32->64) BN ReLU maxpool2 -> conv3x3(64->128) BN ReLU maxpool2
    -> flatten (128*3*3) -> linear(1152->128) ReLU  [= "features", 128-d]  -> dropout(0.3) -> linear(128->10)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from gankit.errors import GankitError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
CLASSIFIER_DATASETS = ("mnist", "fashion_mnist")
INPUT_SHAPE = (1, 28, 28)
FEATURE_DIM = 128


class SmallCNN(nn.Module):
    def __init__(self, n_classes: int = 10) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                    nn.MaxPool2d(2)]

        self.conv = nn.Sequential(*block(1, 32), *block(32, 64), *block(64, 128))  # 28 -> 14 -> 7 -> 3
        self.fc = nn.Linear(128 * 3 * 3, FEATURE_DIM)
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(FEATURE_DIM, n_classes)

    def features(self, x: Tensor) -> Tensor:
        """The 128-d penultimate activations (after ReLU)."""
        return torch.relu(self.fc(self.conv(x).flatten(1)))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.dropout(self.features(x)))

    def features_and_logits(self, x: Tensor) -> tuple[Tensor, Tensor]:
        f = self.features(x)
        return f, self.head(f)


def weights_path(dataset: str) -> Path:
    return WEIGHTS_DIR / f"{dataset}.pt"


_CACHE: dict[tuple[str, str], tuple[SmallCNN, dict[str, Any]]] = {}


def load_classifier(dataset: str, device: torch.device | str = "cpu") -> tuple[SmallCNN, dict[str, Any]]:
    """The shipped classifier for ``dataset`` in eval mode on ``device``, and its metadata (test accuracy, ...)."""
    if dataset not in CLASSIFIER_DATASETS:
        raise GankitError(f"no shipped classifier for dataset '{dataset}'; classifier metrics (cfd, cs, classes) "
                          f"exist for: {', '.join(CLASSIFIER_DATASETS)}")
    key = (dataset, str(device))
    if key not in _CACHE:
        path = weights_path(dataset)
        if not path.is_file():
            raise GankitError(f"the {dataset} classifier weights {path} are missing; reinstall gankit or run "
                              "scripts/train_classifiers.py")
        blob = torch.load(path, map_location="cpu", weights_only=True)
        model = SmallCNN(int(blob.get("n_classes", 10)))
        model.load_state_dict(blob["state_dict"])
        meta = {k: v for k, v in blob.items() if k != "state_dict"}
        _CACHE[key] = (model.to(device).eval().requires_grad_(False), meta)
    return _CACHE[key]
