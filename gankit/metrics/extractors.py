"""Feature extractors: torch-fidelity's Inception-v3, a random-weight stand-in for tests, and the shipped
MNIST / Fashion-MNIST classifiers.

An extractor maps a batch of images to ``(features, logits)``: ``features`` for FID, KID and precision/recall
(Inception: the 2048-d pool3 layer, torch-fidelity's '2048'), ``logits`` for the Inception Score (Inception:
torch-fidelity's 'logits_unbiased', the 1008-way logits without bias, as the original TF implementation).

Inception weights are looked up, in order: the ``weights`` argument (``--inception-weights PATH``), the
environment variable GANKIT_INCEPTION_WEIGHTS, torch hub's cache (TORCH_HOME/hub/checkpoints/FILE, where
torch-fidelity downloads them), and finally a download by torch hub. When none works, a GankitError names the
file and where to put it.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gankit.data.base import to_unit_range
from gankit.errors import GankitError
from gankit.metrics.resize import INCEPTION_SIDE, RESIZE_NOTES, RESIZE_PROTOCOLS, clean_resize

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_FILE}"
WEIGHTS_ENV = "GANKIT_INCEPTION_WEIGHTS"
INCEPTION_SHA256_PREFIX = "6726825d"


@dataclass
class Extractor:
    """A feature extractor ready on a device. ``fn`` takes images as uint8 NCHW (``input == "uint8"``) or float
    in [-1, 1] (``input == "unit"``) and returns (features [N, D], logits [N, C]), both float32."""

    name: str
    fn: Callable[[Tensor], tuple[Tensor, Tensor]]
    input: str  # "uint8" (3 channels; 1-channel images are repeated) or "unit"
    feature_layer: str
    logits_layer: str
    describe: str
    input_shape: tuple[int, ...] | None = None  # required image shape, when fixed
    extra: dict[str, Any] = field(default_factory=dict)
    # Inception-style extractors: "legacy" (the network resizes uint8 input itself) or "clean" (images are
    # PIL-bicubic resized to 299x299 float here and ``fn`` receives float input); None: no resize at all.
    resize_protocol: str | None = None
    resize_note: str = ""

    @torch.no_grad()
    def __call__(self, images_uint8: Tensor) -> tuple[Tensor, Tensor]:
        if self.input == "uint8":
            x = images_uint8 if images_uint8.shape[1] == 3 else images_uint8.expand(-1, 3, -1, -1)
            if self.resize_protocol == "clean":
                x = clean_resize(x)
        else:
            x = to_unit_range(images_uint8)
        features, logits = self.fn(x)
        return features.float(), logits.float()


# --- Inception-v3 through torch-fidelity ---------------------------------------------------------------------

def hub_weights_path() -> Path:
    """Where torch hub (and so torch-fidelity) keeps the downloaded Inception weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE


def _place_hint() -> str:
    return (f"place {INCEPTION_FILE} (from {INCEPTION_URL}) in {hub_weights_path().parent}/, or pass its path with "
            f"--inception-weights PATH or the environment variable {WEIGHTS_ENV}")


def locate_inception_weights(weights: str | Path | None = None, download: bool = True) -> Path:
    """The Inception-v3 weights file to use: ``weights``, else $GANKIT_INCEPTION_WEIGHTS, else torch hub's
    cache, else downloaded there (when ``download``). One-line GankitError when none works."""
    for given, source in ((weights, "--inception-weights"), (os.environ.get(WEIGHTS_ENV), WEIGHTS_ENV)):
        if given:
            path = Path(given).expanduser()
            if not path.is_file():
                raise GankitError(f"{source} {path} does not exist; it should be torch-fidelity's Inception-v3 "
                                  f"weights {INCEPTION_FILE} (from {INCEPTION_URL})")
            return path
    cached = hub_weights_path()
    if cached.is_file():
        return cached
    reason = "downloads are disabled"
    if download:
        import contextlib
        import io
        import sys

        said = io.StringIO()  # torch hub writes "Downloading: ..." to stdout, where `gankit eval` prints JSON
        try:
            with contextlib.redirect_stdout(said):
                torch.hub.load_state_dict_from_url(INCEPTION_URL, progress=False, map_location="cpu")
            sys.stderr.write(said.getvalue())  # said only once it worked: a failure stays one line
        except Exception as exc:  # noqa: BLE001 - URLError, OSError, RuntimeError, ...
            reason = f"the download failed ({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''})"
        if cached.is_file():
            return cached
    raise GankitError(f"the Inception-v3 weights for fid/is/kid/prc are missing and {reason}; {_place_hint()}")


def _check_inception_file(path: Path) -> None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        raise GankitError(f"cannot load {path} as Inception-v3 weights ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:160] if str(exc) else ''}); {_place_hint()}") from None
    if not isinstance(state, dict) or "Mixed_7c.branch_pool.conv.weight" not in state or "fc.weight" not in state:
        raise GankitError(f"{path} is not torch-fidelity's Inception-v3 state dict {INCEPTION_FILE}; "
                          f"{_place_hint()}")


def inception_v3(device: torch.device, weights: str | Path | None = None, download: bool = True,
                 resize_protocol: str = "legacy", **_: Any) -> Extractor:
    """torch-fidelity's FeatureExtractorInceptionV3 ('inception-v3-compat'); features '2048' (pool3), logits
    'logits_unbiased'. ``legacy``: uint8 RGB images, resized to 299x299 inside the network by the TF1-compatible
    bilinear interpolation; ``clean``: float 299x299 images already resized (gankit.metrics.resize)."""
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import (
            FeatureExtractorInceptionV3,
        )
        from torch_fidelity.version import __version__ as tf_version
    except ImportError:
        raise GankitError("fid/is/kid/prc need torch-fidelity: pip install torch-fidelity") from None
    path = locate_inception_weights(weights, download)
    _check_inception_file(path)  # weights_only=True first: torch-fidelity loads it with weights_only=False
    model = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                        feature_extractor_weights_path=str(path)).to(device).eval()

    first_layer = model.Conv2d_1a_3x3

    def fn(x: Tensor) -> tuple[Tensor, Tensor]:
        if x.dtype == torch.uint8:  # legacy: the network resizes
            pool, logits = model(x)
            return pool, logits
        # clean: x is float [N, 3, 299, 299] in [0, 255]. torch-fidelity's forward takes uint8 only and then
        # resizes (an identity at 299x299) and normalises to (x - 128) / 128; so run it on a uint8 placeholder
        # and put the float image, normalised the same way, in front of the first convolution.
        def swap_input(module: nn.Module, args: tuple[Tensor, ...]) -> tuple[Tensor]:
            return ((x.to(args[0].dtype) - 128) / 128,)

        placeholder = torch.zeros(x.shape[0], 3, INCEPTION_SIDE, INCEPTION_SIDE, dtype=torch.uint8,
                                  device=x.device)
        handle = first_layer.register_forward_pre_hook(swap_input)
        try:
            pool, logits = model(placeholder)
        finally:
            handle.remove()
        return pool, logits

    standard = _sha256_prefix(path) == INCEPTION_SHA256_PREFIX
    weights_note = "TF 2015-12-05 weights" if standard else f"NON-STANDARD weights {path.name}, not comparable"
    return Extractor("inception-v3-compat", fn, "uint8", "2048", "logits_unbiased",
                     f"Inception-v3 (torch-fidelity {tf_version} inception-v3-compat, {weights_note})",
                     extra={"weights_file": path.name, "weights_standard": standard,
                            "resize_protocol": resize_protocol},
                     resize_protocol=resize_protocol, resize_note=RESIZE_NOTES[resize_protocol])


_SHA_CACHE: dict[tuple[str, float, int], str] = {}


def _sha256_prefix(path: Path) -> str:
    """The first 8 hex digits of the file's sha256 (torch hub's file-name convention: ...-6726825d.pth)."""
    import hashlib

    st = path.stat()
    key = (str(path.resolve()), st.st_mtime, st.st_size)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
        _SHA_CACHE[key] = h.hexdigest()[:8]
    return _SHA_CACHE[key]


def write_random_inception_weights(path: str | Path, seed: int = 0) -> Path:
    """Write a state dict of torch-fidelity's Inception-v3 architecture with random weights: same compute as the
    real network, numbers meaningless. For speed benchmarks and tests on machines without the real weights."""
    import torch_fidelity.feature_extractor_inceptionv3 as tfi

    cls = tfi.FeatureExtractorInceptionV3
    saved_url, saved_load = tfi.load_state_dict_from_url, cls.load_state_dict
    tfi.load_state_dict_from_url = lambda *a, **k: {}  # no download: keep the random initialisation
    cls.load_state_dict = lambda self, *a, **k: None  # type: ignore[method-assign,assignment]
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = cls("inception-v3-compat", ["2048"])
    finally:
        tfi.load_state_dict_from_url, cls.load_state_dict = saved_url, saved_load  # type: ignore[method-assign]
    path = Path(path)
    torch.save(model.state_dict(), path)
    return path


# --- a random-weight extractor for tests ---------------------------------------------------------------------

class _RandomNet(nn.Module):
    def __init__(self, features: int = 64, classes: int = 10) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(),
                                  nn.Conv2d(32, features, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(features, classes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = F.interpolate(x.float() / 127.5 - 1, size=(32, 32), mode="bilinear", align_corners=False)
        f = self.conv(x)
        return f, self.fc(f / f.norm(dim=1, keepdim=True).clamp_min(1e-8)) * 10


def random_test(device: torch.device, resize_protocol: str = "legacy", **_: Any) -> Extractor:
    """A small random-weight CNN (fixed seed): 64-d features, 10 logits. For tests and smoke runs only; its
    numbers mean nothing. Under the clean protocol it reads the 299x299 float images like Inception would."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1234)
        net = _RandomNet().to(device).eval().requires_grad_(False)
    return Extractor("random-test", net, "uint8", "pool (64-d)", "logits (10)",
                     "random-weight test CNN (NOT Inception; numbers not comparable)",
                     extra={"resize_protocol": resize_protocol}, resize_protocol=resize_protocol,
                     resize_note=RESIZE_NOTES[resize_protocol])


EXTRACTORS: dict[str, Callable[..., Extractor]] = {"inception-v3-compat": inception_v3, "random-test": random_test}


def register_extractor(name: str, factory: Callable[..., Extractor]) -> None:
    """Add an extractor factory ``factory(device, weights=None, download=True, resize_protocol="legacy")
    -> Extractor``."""
    if name in EXTRACTORS:
        raise RuntimeError(f"extractor '{name}' registered twice")
    EXTRACTORS[name] = factory


def build_extractor(name: str, device: torch.device, weights: str | Path | None = None,
                    download: bool = True, resize_protocol: str = "legacy") -> Extractor:
    """The named extractor on ``device`` under ``resize_protocol`` (legacy or clean, gankit.metrics.resize); kept
    for later calls in this process (periodic evaluation) under the arguments and the weights lookup they lead to."""
    if name not in EXTRACTORS:
        raise GankitError(f"unknown feature extractor '{name}'; choose one of: {', '.join(sorted(EXTRACTORS))}")
    if resize_protocol not in RESIZE_PROTOCOLS:
        raise GankitError(f"unknown resize protocol '{resize_protocol}'; choose one of: {', '.join(RESIZE_PROTOCOLS)}")
    key = (name, str(device), str(weights), download, os.environ.get(WEIGHTS_ENV), str(hub_weights_path()),
           resize_protocol)
    if key not in _BUILT:
        _BUILT.clear()  # one at a time: an Inception-v3 holds 100 MB of device memory
        _BUILT[key] = EXTRACTORS[name](device, weights=weights, download=download, resize_protocol=resize_protocol)
    return _BUILT[key]


_BUILT: dict[tuple[Any, ...], Extractor] = {}


# --- the shipped classifiers ---------------------------------------------------------------------------------

def classifier(dataset: str, device: torch.device) -> Extractor:
    from gankit.metrics.classifier import FEATURE_DIM, INPUT_SHAPE, load_classifier

    model, meta = load_classifier(dataset, device)
    acc = meta.get("test_accuracy")
    return Extractor(f"classifier-{dataset}", model.features_and_logits, "unit", f"features ({FEATURE_DIM}-d)",
                     "logits (10)", f"gankit {dataset} SmallCNN classifier (test accuracy {acc:.4f})"
                     if acc is not None else f"gankit {dataset} SmallCNN classifier", INPUT_SHAPE,
                     {"test_accuracy": acc})
