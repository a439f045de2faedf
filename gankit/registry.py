"""Name -> factory tables for every pluggable part, with parameter checking.

A component in a config is a *spec*: a mapping with a ``name`` and the factory's keyword parameters,
e.g. ``{name: r1, weight: 10.0}``. ``Registry.resolve`` checks the spec against the factory's signature
(unknown keys, types) and fills in the defaults, so the resolved config states every value used.
"""
from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from gankit.errors import ConfigError, ParamError


@dataclass(frozen=True)
class Range:
    """A bound on a number, used as ``Annotated[float, Range(...)]`` so that a spec is range-checked when it is
    resolved, before anything is built or written."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        return f"{'<' if self.high_open else '<='} {self.high:g}"

    def check(self, value: float, key: str) -> None:
        too_low = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        too_high = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        if too_low or too_high:
            raise ConfigError(f"{key} must be {self.describe()}, got {value}")


POSITIVE = Range(low=0, low_open=True)
NON_NEGATIVE = Range(low=0)
AT_LEAST_ONE = Range(low=1)
FRACTION = Range(low=0, high=1, high_open=True)  # [0, 1): decays, Adam betas


def coerce(value: Any, annotation: Any, key: str) -> Any:
    """Check ``value`` against a type annotation and convert it where lossless (int -> float, list -> tuple)."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return value
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Annotated:
        value = coerce(value, args[0], key)
        for bound in annotation.__metadata__:
            if isinstance(bound, Range) and value is not None:
                bound.check(value, key)
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return coerce(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{key} must not be null")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{key} must be one of {', '.join(map(str, args))}, got {value!r}")
        return value
    if origin in (list, tuple) or annotation in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {type(value).__name__} {value!r}")
        if (origin or annotation) is tuple and args and args[-1] is not Ellipsis:  # fixed length, e.g. betas
            if len(value) != len(args):
                raise ConfigError(f"{key} must be a list of {len(args)} values, got {list(value)}")
            return [coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args))]
        inner = args[0] if args else Any
        items = [coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
        return items  # lists everywhere: they survive YAML and torch.load(weights_only=True) alike
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping, got {type(value).__name__} {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {type(value).__name__} {value!r}")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {type(value).__name__} {value!r}")
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {type(value).__name__} {value!r}")
        return value
    return value


class Registry:
    """One table of named factories (losses, regularizers, models, ...)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., Any]] = {}
        self._help: dict[str, str] = {}
        self.moved: dict[str, str] = {}  # names that now live elsewhere -> where, for a helpful error

    def register(self, name: str, help: str = "") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def decorate(factory: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._factories:
                raise RuntimeError(f"{self.kind} '{name}' registered twice")
            self._factories[name] = factory
            doc = (factory.__doc__ or "").strip().splitlines()
            self._help[name] = help or (doc[0] if doc else "")
            return factory

        return decorate

    def names(self) -> list[str]:
        return sorted(self._factories)

    def describe(self, name: str) -> str:
        return self._help[name]

    def get(self, name: str, where: str = "name") -> Callable[..., Any]:
        if name in self.moved:
            raise ConfigError(f"{self.kind} '{name}' at {where} is now {self.moved[name]}")
        if name not in self._factories:
            raise ConfigError(f"unknown {self.kind} '{name}' at {where}; choose one of: {', '.join(self.names())}")
        return self._factories[name]

    def _keyword_params(self, factory: Callable[..., Any]) -> dict[str, inspect.Parameter]:
        hints = typing.get_type_hints(factory, include_extras=True)
        params = {}
        for p in inspect.signature(factory).parameters.values():
            if p.kind is inspect.Parameter.KEYWORD_ONLY:
                params[p.name] = p.replace(annotation=hints.get(p.name, p.annotation))
        return params

    def resolve(self, spec: Any, where: str) -> dict[str, Any]:
        """Check a spec (a mapping with 'name', or a bare name) and return it with every default filled in."""
        if isinstance(spec, str):
            spec = {"name": spec}
        if not isinstance(spec, dict) or "name" not in spec:
            raise ConfigError(f"{where} must be a {self.kind} name or a mapping with a 'name' key, got {spec!r}")
        name = spec["name"]
        if not isinstance(name, str):
            raise ConfigError(f"{where}.name must be a string, got {name!r}")
        params = self._keyword_params(self.get(name, f"{where}.name"))
        unknown = sorted(set(spec) - set(params) - {"name"})
        if unknown:
            valid = ", ".join(sorted(params)) or "none"
            raise ConfigError(f"unknown key {where}.{unknown[0]} for {self.kind} '{name}'; valid keys: {valid}")
        resolved: dict[str, Any] = {"name": name}
        for key, p in params.items():
            if key in spec:
                resolved[key] = coerce(spec[key], p.annotation, f"{where}.{key}")
            elif p.default is inspect.Parameter.empty:
                raise ConfigError(f"missing key {where}.{key} for {self.kind} '{name}'")
            else:
                resolved[key] = list(p.default) if isinstance(p.default, tuple) else p.default
        return resolved

    def build(self, spec: Any, where: str, *args: Any) -> Any:
        """Resolve a spec and call its factory with the positional context ``args`` (e.g. the data shape)."""
        resolved = self.resolve(spec, where)
        kwargs = {k: v for k, v in resolved.items() if k != "name"}
        try:
            return self.get(resolved["name"])(*args, **kwargs)
        except ParamError as exc:
            raise ConfigError(f"{where}.{exc.param} {exc.message}") from None


LOSSES = Registry("loss")
REGULARIZERS = Registry("regularizer")
MODELS = Registry("model")
DATASETS = Registry("dataset")
OPTIMIZERS = Registry("optimizer")
TERMS = Registry("objective term")
AUGMENTATIONS = Registry("augmentation")
SCHEDULES = Registry("schedule")
REGULARIZERS.moved["noise"] = "an augmentation: write it under augment: [{name: noise, sigma: ...}]"

ALL: dict[str, Registry] = {
    "losses": LOSSES,
    "regularizers": REGULARIZERS,
    "models": MODELS,
    "datasets": DATASETS,
    "optimizers": OPTIMIZERS,
    "terms": TERMS,
    "augmentations": AUGMENTATIONS,
    "schedules": SCHEDULES,
}


def load_builtins() -> None:
    """Import the modules whose decorators fill the registries."""
    import gankit.augment  # noqa: F401
    import gankit.data  # noqa: F401
    import gankit.losses  # noqa: F401
    import gankit.methods  # noqa: F401
    import gankit.models  # noqa: F401
    import gankit.optim  # noqa: F401
    import gankit.regularizers  # noqa: F401
    import gankit.schedules  # noqa: F401
