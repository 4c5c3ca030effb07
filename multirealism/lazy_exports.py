"""PEP 562 lazy exports for the package ``__init__`` modules: a name is imported from its module on first use,
so importing a package (and the command line's ``--help``) does not load torch."""

from __future__ import annotations

import importlib
from typing import Any, Callable, Dict, List, MutableMapping, Tuple


def lazy_exports(
    package: str, namespace: MutableMapping[str, Any], exports: Dict[str, str]
) -> Tuple[Callable[[str], Any], Callable[[], List[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` whose ``exports`` map a public name to the module defining
    it (a name equal to the module's last part is that module itself). Imported values are cached in
    ``namespace`` (the package's globals)."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = importlib.import_module(module)
        if name != module.rsplit(".", 1)[-1]:
            value = getattr(value, name)
        namespace[name] = value
        return value

    def __dir__() -> List[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
