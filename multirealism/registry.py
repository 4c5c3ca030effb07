"""Name-to-class registries for the four swappable codec components.

A registry maps a short key (``"elic"``) to an ``nn.Module`` subclass. Registering a class also
records, on every instance, the key and keyword arguments it was built with, so a codec can write
its own architecture into a checkpoint and be rebuilt from it without pickling code.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from typing import Any, Callable, Dict, Iterator, List, Optional, Type, TypeVar

from torch import nn

M = TypeVar("M", bound=Type[nn.Module])

SPEC_ATTR = "_registry_spec"


class Registry:
    """A named collection of ``nn.Module`` classes, in the style of timm's model registry."""

    def __init__(self, kind: str, builtins: Optional[str] = None) -> None:
        self.kind = kind
        self._builtins = builtins  # module that registers the built-in entries, imported on first lookup
        self._entries: Dict[str, Type[nn.Module]] = {}

    def _entries_with_builtins(self) -> Dict[str, Type[nn.Module]]:
        if self._builtins is not None:
            importlib.import_module(self._builtins)
        return self._entries

    def register(self, name: Optional[str] = None) -> Callable[[M], M]:
        """Class decorator: ``@encoders.register("elic")``. The key defaults to the class name."""

        def decorator(cls: M) -> M:
            if not (inspect.isclass(cls) and issubclass(cls, nn.Module)):
                raise TypeError(f"{self.kind} registry only takes nn.Module subclasses, got {cls!r}")
            key = name or cls.__name__
            if key in self._entries and self._entries[key] is not cls:
                raise KeyError(f"{self.kind} {key!r} is already registered to {self._entries[key]!r}")
            self._entries[key] = cls
            _record_init_args(cls, key)
            return cls

        return decorator

    def get(self, name: str) -> Type[nn.Module]:
        """The class registered under ``name``; a KeyError lists the known keys."""
        entries = self._entries_with_builtins()
        try:
            return entries[name]
        except KeyError:
            known = ", ".join(sorted(entries)) or "none"
            raise KeyError(f"unknown {self.kind} {name!r}; registered: {known}") from None

    def build(self, name: str, **kwargs: Any) -> nn.Module:
        """Instantiate the class registered under ``name`` with keyword arguments."""
        return self.get(name)(**kwargs)

    def list(self) -> List[str]:
        """Sorted registry keys."""
        return sorted(self._entries_with_builtins())

    def __contains__(self, name: object) -> bool:
        return name in self._entries_with_builtins()

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.list()})"


def _record_init_args(cls: Type[nn.Module], key: str) -> None:
    """Wrap ``cls.__init__`` so an instance of exactly ``cls`` remembers (key, kwargs)."""
    original = cls.__init__
    if getattr(original, "_records_spec", False) and original.__qualname__.startswith(cls.__qualname__):
        return
    signature = inspect.signature(original)

    @functools.wraps(original)
    def __init__(self: nn.Module, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if type(self) is cls:
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            arguments = dict(bound.arguments)
            arguments.pop(next(iter(signature.parameters)))
            for param in signature.parameters.values():
                if param.kind is inspect.Parameter.VAR_KEYWORD:
                    arguments.update(arguments.pop(param.name, {}))
            object.__setattr__(self, SPEC_ATTR, {"name": key, "args": arguments})

    __init__._records_spec = True  # type: ignore[attr-defined]
    cls.__init__ = __init__  # type: ignore[method-assign]


def component_spec(module: nn.Module) -> Optional[Dict[str, Any]]:
    """``{"name": key, "args": {...}}`` for a module built from a registered class, else None."""
    return getattr(module, SPEC_ATTR, None)


encoders = Registry("encoder", "multirealism.components")
entropy_models = Registry("entropy model", "multirealism.components")
generators = Registry("generator", "multirealism.components")
discriminators = Registry("discriminator", "multirealism.training.discriminators")

REGISTRIES: Dict[str, Registry] = {
    "encoder": encoders,
    "entropy_model": entropy_models,
    "generator": generators,
    "discriminator": discriminators,
}
rate_controls = Registry("rate control", "multirealism.components")
REGISTRIES["rate_control"] = rate_controls
