"""Which precision a run computes in: ``train.precision`` (auto, fp32, bf16) resolved for a device and a model.

``auto`` means:

* 2-D toy data: fp32 on every device (bf16 rounding in the hidden layers is as wide as a 0.01-std mode);
* images on a GPU that computes bf16 natively: bf16;
* images on a CPU: **measured on this machine**. Whether bf16 (AVX512-BF16/AMX) is faster than fp32 depends on
  the CPU, the thread count, the torch build and the layer shapes, not on a feature flag (one AVX512-BF16 CPU ran
  a recipe 50% slower in bf16, another 1.8x faster), so the first run of a model on a machine times one
  forward and backward of its own G and D in both precisions, on copies (the run's weights, buffers and random
  streams are untouched), and picks bf16 only if it is clearly faster. The result is cached per CPU model, torch
  version, thread count and model (``$XDG_CACHE_HOME/gankit/precision.json``), so every later run of that model on
  that machine makes the same choice without measuring, and the run's config.yaml records the choice, so a
  resumed run keeps it on any machine. ``GANKIT_CPU_PRECISION=fp32`` (or ``bf16``) skips the measurement.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch

from gankit.errors import GankitError
from gankit.io import atomic_path

if TYPE_CHECKING:
    from gankit.experiment import Experiment

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
NAMES = {dtype: name for name, dtype in DTYPES.items()}
CPU_PRECISION_ENV = "GANKIT_CPU_PRECISION"
# bf16 must win by this factor: within the noise of a shared machine fp32 (exact, reproducible) is kept.
BF16_MARGIN = 0.9


def native_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:  # private helpers; absent on some builds, where fp32 is the safe answer
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:
        return False


def resolve_precision(name: str, device: torch.device, data_kind: str = "image") -> torch.dtype | None:
    """The compute dtype ``name`` means on ``device`` for ``data_kind``; None: measure it (images on a CPU, auto;
    see the module docstring)."""
    if name != "auto":
        return DTYPES[name]
    if data_kind == "toy":
        return torch.float32
    if device.type == "cuda":
        return torch.bfloat16 if native_bf16(device) else torch.float32
    if device.type != "cpu":
        return torch.float32
    forced = os.environ.get(CPU_PRECISION_ENV, "").strip().lower()
    if forced in DTYPES:
        return DTYPES[forced]
    if forced:
        raise GankitError(f"${CPU_PRECISION_ENV} is '{forced}'; use fp32 or bf16 (or unset it to measure)")
    return None if native_bf16(device) else torch.float32


def cache_file() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "gankit" / "precision.json"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cache_key(exp: "Experiment", batch: int) -> str:
    """What the timing depends on: the machine, torch, the thread count and the model at its batch."""
    cfg = exp.cfg
    model = json.dumps({"model": cfg.to_dict()["model"], "shape": list(exp.data.shape), "batch": batch,
                        "channels_last": exp.channels_last, "classes": exp.n_classes}, sort_keys=True)
    digest = hashlib.sha256(model.encode()).hexdigest()[:16]
    return f"{cpu_name()} | torch {torch.__version__} | {torch.get_num_threads()} threads | model {digest}"


def read_cache(path: Path) -> dict[str, Any]:
    try:
        got = json.loads(path.read_text())
        return got if isinstance(got, dict) else {}
    except (OSError, ValueError):
        return {}  # absent or damaged: measure again (and rewrite it whole)


def time_pair(step: Callable[[bool], None], rounds: int = 3, reps: int = 2) -> tuple[float, float]:
    """Median seconds of ``step(bf16)`` for fp32 and bf16, interleaved round by round after one warm-up each."""
    step(False)
    step(True)
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(rounds):
        for bf16 in (False, True):
            t0 = time.perf_counter()
            for _ in range(reps):
                step(bf16)
            times[bf16].append((time.perf_counter() - t0) / reps)
    return statistics.median(times[False]), statistics.median(times[True])


def model_step(exp: "Experiment", batch: int) -> Callable[[bool], None]:
    """One forward and backward of copies of G and D on a batch of G's samples (where a G step's time goes)."""
    from gankit.models.conditional import as_output

    G = copy.deepcopy(exp.generator)
    D = copy.deepcopy(exp.discriminator)
    with torch.random.fork_rng(devices=[]):
        z, y = exp.prior.sample(batch, exp.device)

    def step(bf16: bool) -> None:
        with torch.random.fork_rng(devices=[]), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = as_output(D(G(z, y).float(), y)).logit.float().sum()
        loss.backward()
        for net in (G, D):
            net.zero_grad(set_to_none=True)

    return step


def measured_cpu_precision(exp: "Experiment", *, path: Path | None = None,
                           timer: Callable[[Callable[[bool], None]], tuple[float, float]] | None = None
                           ) -> torch.dtype:
    """fp32 or bf16 for ``exp`` on this CPU: from the cache, else timed (``model_step``) and cached."""
    path = path or cache_file()
    pack = exp.cfg.model.pack
    batch = max(pack, exp.cfg.train.batch_size - exp.cfg.train.batch_size % pack)
    key = cache_key(exp, batch)
    entry = read_cache(path).get(key)
    if isinstance(entry, dict) and entry.get("precision") in DTYPES:
        return DTYPES[entry["precision"]]
    try:
        fp32_s, bf16_s = (timer or time_pair)(model_step(exp, batch))
    except (RuntimeError, TypeError, ValueError) as exc:  # a model this probe cannot drive (D with extra inputs)
        print(f"gankit: precision auto: could not time this model ({type(exc).__name__}); fp32", file=sys.stderr)
        return torch.float32
    choice = "bf16" if bf16_s < BF16_MARGIN * fp32_s else "fp32"
    print(f"gankit: precision auto on this CPU: one G and D forward/backward took {fp32_s * 1e3:.1f} ms in fp32, "
          f"{bf16_s * 1e3:.1f} ms in bf16: {choice} (cached in {path}; set train.precision to choose)", file=sys.stderr)
    cache = read_cache(path)  # re-read: another process may have added its own model meanwhile
    cache[key] = {"precision": choice, "fp32_ms": round(fp32_s * 1e3, 2), "bf16_ms": round(bf16_s * 1e3, 2),
                  "date": time.strftime("%Y-%m-%d")}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(cache, indent=1, sort_keys=True) + "\n")
    except OSError:
        pass  # a read-only home: the choice stands for this run, and is measured again next time
    return DTYPES[choice]
