"""The op registry, built from the code: each op module registers its classes with ``@register``."""

from __future__ import annotations

from collections.abc import Callable

from .base import Op

REGISTRY: dict[str, Op] = {}


def register(*ranked_aliases: str) -> Callable[[type[Op]], type[Op]]:
    """Register an op under its kind and, for rank-generic ops, aliases such as `conv2d`.

    An alias ending in `1d`, `2d` or `3d` fixes the spatial rank it accepts.
    """

    def decorate(cls: type[Op]) -> type[Op]:
        assert cls.kind not in REGISTRY, f"op {cls.kind} registered twice"
        REGISTRY[cls.kind] = cls()
        for alias in ranked_aliases:
            assert alias not in REGISTRY, f"alias {alias} registered twice"
            REGISTRY[alias] = cls(rank=int(alias[-2]), name=alias)
        return cls

    return decorate


def lookup(name: str) -> Op | None:
    return REGISTRY.get(name)
