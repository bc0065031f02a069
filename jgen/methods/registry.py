"""The registry of methods (families of generative model) by config name, `config.method.name`.

Method modules register themselves with `@register(name)`; `jgen.methods` imports every method module, so
`jgen.methods.get_method(name)` finds them all. Nothing outside `jgen.methods` names a method module.
"""

from __future__ import annotations

from collections.abc import Callable

_REGISTRY: dict[str, type] = {}


def register(name: str) -> Callable[[type], type]:
    """Class decorator: make a Method available as `config.method.name = name`."""

    def deco(cls: type) -> type:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"method name {name!r} is registered twice")
        _REGISTRY[name] = cls
        cls.name = name
        return cls

    return deco


def get_method(name: str) -> type:
    """The Method class registered under `name`."""
    if name not in _REGISTRY:
        raise KeyError(f"method.name={name!r} is not a known method; choose one of {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def method_names() -> list[str]:
    return sorted(_REGISTRY)
