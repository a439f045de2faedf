"""The shipped MNIST / Fashion-MNIST classifiers and their metrics (cfd, cs, classes, intra-class FID) on the real
images of ../shared/data (skipped when it is absent)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gankit.data.images import read_idx
from gankit.errors import GankitError
from gankit.metrics import compute_metrics, intra_fid
from gankit.metrics.classifier import load_classifier, weights_path

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FOLDERS = {"mnist": ("mnist", "MNIST"), "fashion_mnist": ("fashion-mnist", "FashionMNIST")}
MIN_ACCURACY = {"mnist": 0.99, "fashion_mnist": 0.91}


def need(dataset: str) -> Path:
    folder = SHARED_DATA / FOLDERS[dataset][0]
    if not folder.is_dir():
        pytest.skip(f"no offline {dataset} copy at {folder}")
    return folder


@pytest.fixture
def mnist_root(tmp_path):
    """A data root holding links to the shared MNIST files, as gankit's mnist factory expects them."""
    folder = need("mnist")
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in folder.glob("*-ubyte.gz"):
        (raw / f.name).symlink_to(f)
    return str(tmp_path)


def test_images(dataset: str, split: str = "t10k") -> tuple[torch.Tensor, torch.Tensor]:
    folder = need(dataset)
    x = torch.from_numpy(read_idx(folder / f"{split}-images-idx3-ubyte.gz").copy()).unsqueeze(1)
    y = torch.from_numpy(read_idx(folder / f"{split}-labels-idx1-ubyte.gz").astype("int64"))
    return x.float().div(127.5).sub(1), y


test_images.__test__ = False  # a helper, not a test


def from_tensor(x: torch.Tensor):
    state = {"at": 0}

    def generate(k: int) -> torch.Tensor:
        out = x[state["at"]:state["at"] + k]
        state["at"] += k
        return out

    return generate


@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist"])
def test_shipped_classifier_accuracy_and_size(dataset):
    path = weights_path(dataset)
    assert path.stat().st_size < 2_000_000
    model, meta = load_classifier(dataset)
    assert meta["test_accuracy"] >= MIN_ACCURACY[dataset]
    x, y = test_images(dataset)
    with torch.no_grad():
        correct = sum(int((model(x[i:i + 2000]).argmax(1) == y[i:i + 2000]).sum()) for i in range(0, len(x), 2000))
    assert correct / len(x) == pytest.approx(meta["test_accuracy"], abs=1e-4)


def test_classifier_metrics_on_real_and_collapsed_digits(mnist_root, tmp_path):
    x, y = test_images("mnist")
    reference = {"name": "mnist", "split": "train", "root": mnist_root}
    kwargs = {"n_reference": 3000, "cache_dir": tmp_path / "cache", "device": "cpu", "batch_size": 1000}
    names = "cfd,cs,classes,classifier_density_coverage"
    real = compute_metrics(names, from_tensor(x[:2000]), 2000, reference, **kwargs)
    json.dumps(real)  # the CLI prints it as one JSON object
    classes = real["classes"]["value"]
    assert classes["classes_covered"] == 10 and classes["kl_to_uniform"] < 0.01
    assert classes["class_names"][3] == "3" and sum(classes["histogram"]) == 2000
    assert real["cs"]["value"] > 9.0
    assert real["cfd"]["value"] < 20.0  # real test vs real train digits; a single class gives ~900
    proto = real["cfd"]["protocol"]
    assert proto["reference"] == "mnist/train" and proto["n_reference"] == 3000 and proto["n_generated"] == 2000
    assert proto["classifier_test_accuracy"] >= 0.99
    ones = x[y == 1][:500]
    collapsed = compute_metrics(names, from_tensor(ones), 500, reference, **kwargs)
    assert collapsed["classes"]["value"]["kl_to_uniform"] > 2.0  # log 10 = 2.30 for a single class
    assert collapsed["cs"]["value"] < 1.2
    assert collapsed["cfd"]["value"] > 20 * real["cfd"]["value"]
    # density/coverage in the classifier's space: real test digits have density near 1 and cover most train digits
    # (measured 0.91 and 0.74; i.i.d. samples would give coverage 1 - exp(-kM/N) = 0.96, but the classifier was
    # trained on the train split, whose features are tighter); the 1s cover about a tenth of them (one class of ten)
    dc_real, dc_ones = real["classifier_density_coverage"]["value"], collapsed["classifier_density_coverage"]["value"]
    assert dc_real["coverage"] > 0.6 and 0.8 < dc_real["density"] < 1.2
    assert dc_ones["coverage"] < 0.2
    assert len(list((tmp_path / "cache").glob("mnist-train-classifier-mnist-3000-*.pt"))) == 1


def test_intra_fid_in_classifier_space(mnist_root, tmp_path):
    x, y = test_images("mnist")
    by_class = {c: x[y == c] for c in range(10)}
    cursor = {c: 0 for c in range(10)}

    def generate_class(k: int, c: int) -> torch.Tensor:
        out = by_class[c][cursor[c]:cursor[c] + k]
        cursor[c] += k
        return out

    reference = {"name": "mnist", "split": "test", "root": mnist_root}
    out = intra_fid(generate_class, 200, reference, classes=[1, 7], extractor="classifier",
                    cache_dir=tmp_path, device="cpu")
    assert set(out["per_class"]) == {"1", "7"}
    assert out["protocol"]["n_reference_per_class"]["7"] == int((y == 7).sum())
    wrong = intra_fid(lambda k, c: generate_class(k, (c + 1) % 10), 200, reference, classes=[1, 7],
                      extractor="classifier", cache_dir=tmp_path, device="cpu")
    assert wrong["value"] > 10 * out["value"]


def test_classifier_metrics_reject_wrong_shapes(mnist_root):
    x, _ = test_images("mnist")
    with pytest.raises(GankitError) as exc:
        compute_metrics("classes", from_tensor(x), 100, {"name": "mnist", "root": mnist_root, "resolution": 32})
    assert "1x28x28" in str(exc.value) and "1x32x32" in str(exc.value) and "\n" not in str(exc.value)
    big = torch.nn.functional.interpolate(x[:100], size=32)
    with pytest.raises(GankitError) as exc:
        compute_metrics("classes", from_tensor(big), 100, {"name": "mnist", "root": mnist_root})
    assert "1x32x32" in str(exc.value) and "1x28x28" in str(exc.value)
