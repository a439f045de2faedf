"""N copies of a network trained as one: parameters stacked along a new leading seed axis, run with torch.func.vmap.

A ``SeedStack`` looks like an ordinary network to the training loop: it takes a batch of S * B samples (seed s
owns rows s*B .. s*B + B - 1) and returns S * B outputs, so the loop, the losses, the penalties and the method
terms run unchanged. Inside, the batch is viewed as [S, B, ...] and each seed's slice meets its own weights
(``functional_call`` under ``vmap``): batch-norm statistics, packing and maxout stay per seed.

Data and latents come from ``SeedData`` and ``SeedPrior``, which draw each seed's share from that seed's own
RNG state, in the order a single run draws them. With a loss scaled by S (``loss = mean over S*B`` becomes the
sum of the S per-seed means), every seed's gradient is its own run's gradient, and an element-wise optimiser
(Adam, SGD) steps each seed exactly as its own run would.
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap
from torch.utils._pytree import tree_map

from gankit.data.base import Batch
from gankit.prior import Latents, Prior


def _key(name: str) -> str:
    return name.replace(".", "__")


class SeedStack(nn.Module):
    """S networks of one architecture as one module; ``unstack(s)`` gives seed s's state dict."""

    def __init__(self, modules: list[nn.Module]) -> None:
        super().__init__()
        self.n_seeds = len(modules)
        params, buffers = stack_module_state(modules)
        self._names = list(params)
        self._buffer_names = list(buffers)
        # Pairs, not a dict, keep the network's parameter order: the stacked optimiser's state then lines up,
        # index by index, with each seed's own optimiser (see seeds.slice_optimizer_state).
        self.stacked = nn.ParameterDict([(_key(k), nn.Parameter(v.detach().clone())) for k, v in params.items()])
        assert [_key(k) for k, _ in modules[0].named_parameters()] == list(self.stacked.keys())
        for k, v in buffers.items():
            self.register_buffer("buf__" + _key(k), v.clone())
        # The architecture, without storage: functional_call supplies every parameter and buffer. Kept out of
        # the registered submodules so that .parameters() holds the stacked tensors only.
        base = copy.deepcopy(modules[0]).to("meta")
        object.__setattr__(self, "_base", base)
        for attr in ("uses_labels", "data_shape", "role", "class_head"):
            if hasattr(modules[0], attr) and not isinstance(getattr(modules[0], attr), nn.Module):
                object.__setattr__(self, attr, getattr(modules[0], attr))

    def _tensors(self) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        params = {k: self.stacked[_key(k)] for k in self._names}
        buffers = {k: getattr(self, "buf__" + _key(k)) for k in self._buffer_names}
        return params, buffers

    def train(self, mode: bool = True) -> "SeedStack":
        super().train(mode)
        self._base.train(mode)
        return self

    def forward(self, *inputs: Tensor | None, **named: Tensor | None) -> Any:
        """Every input (samples, labels, a term's extra inputs such as VEEGAN's codes) is a batch of S * B rows or
        None."""
        s = self.n_seeds
        keys = list(named)
        everything = [*inputs, *(named[k] for k in keys)]
        grouped = [t.reshape(s, t.shape[0] // s, *t.shape[1:]) if t is not None else None for t in everything]
        params, buffers = self._tensors()
        n_positional = len(inputs)

        def one(p: dict[str, Tensor], b: dict[str, Tensor], *args: Tensor | None) -> Any:
            # vmap maps positional arguments only: keyword inputs travel positionally and are named again here
            kwargs = dict(zip(keys, args[n_positional:]))
            return functional_call(self._base, (p, b), args[:n_positional], kwargs)

        in_dims = (0, 0, *[0 if t is not None else None for t in grouped])
        out = vmap(one, in_dims=in_dims, randomness="different")(params, buffers, *grouped)
        return tree_map(lambda t: t.reshape(t.shape[0] * t.shape[1], *t.shape[2:]), out)

    def unstack(self, s: int) -> dict[str, Tensor]:
        """Seed s's state dict, in the original network's names."""
        params, buffers = self._tensors()
        return {**{k: v[s].detach() for k, v in params.items()}, **{k: v[s] for k, v in buffers.items()}}


class RngStates:
    """One RNG state per seed for the training device; ``use(s)`` swaps seed s's state in and saves it after."""

    def __init__(self, states: list[Tensor], device: torch.device) -> None:
        self.states, self.device = states, device

    @staticmethod
    def current(device: torch.device) -> Tensor:
        return torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()

    def _set(self, state: Tensor) -> None:
        if self.device.type == "cuda":
            torch.cuda.set_rng_state(state, self.device)
        else:
            torch.set_rng_state(state)

    def activate(self, s: int) -> None:
        """Make seed s's state the global one (before saving seed s's checkpoint, or training it alone)."""
        self._set(self.states[s])

    def draw(self, fn: Any) -> list[Any]:
        """fn() once per seed, each under that seed's RNG state; the global state is left as it was."""
        outer = self.current(self.device)
        results = []
        for s, state in enumerate(self.states):
            self._set(state)
            results.append(fn())
            self.states[s] = self.current(self.device)
        self._set(outer)
        return results


def _cat(parts: list[Tensor | None]) -> Tensor | None:
    return None if parts[0] is None else torch.cat(parts)  # type: ignore[arg-type]


class SeedData:
    """The run's data, sampled seed by seed from each seed's RNG: a batch of S * B rows."""

    def __init__(self, data: Any, rngs: RngStates) -> None:
        self._data, self._rngs = data, rngs

    def sample(self, batch_size: int) -> Batch:
        parts = self._rngs.draw(lambda: self._data.sample(batch_size))
        return Batch(torch.cat([p.x for p in parts]), _cat([p.y for p in parts]))

    def __getattr__(self, name: str) -> Any:  # kind, info, shape, real_batch, ...: the data's own
        return getattr(self._data, name)


class SeedPrior(Prior):
    """The run's prior, sampled seed by seed from each seed's RNG (training). With a generator it draws once per
    seed in turn: only the stacked trainer's inherited snapshot latents, which the per-seed runs replace."""

    def __init__(self, prior: Prior, rngs: RngStates) -> None:
        self.__dict__.update(prior.__dict__)
        self._prior, self._rngs = prior, rngs

    def sample(self, n: int, device: torch.device, generator: torch.Generator | None = None) -> Latents:
        if generator is not None:
            parts = [self._prior.sample(n, device, generator) for _ in self._rngs.states]
        else:
            parts = self._rngs.draw(lambda: self._prior.sample(n, device))
        return Latents(torch.cat([p.z for p in parts]), _cat([p.y for p in parts]))
