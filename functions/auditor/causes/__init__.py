"""The cause catalog: every module in this package that defines ``CAUSE`` is one cause.

Adding a cause means adding one module here (its ``CAUSE``, whose ``root=`` picks one of
``auditor.roots``' rules: the incident it counts into) and its fixtures under
``tests/fixtures/<cause-id>/``; nothing else is registered by hand. Modules whose name
starts with ``_`` are shared helpers, not causes.
"""

from __future__ import annotations

import importlib
import pkgutil

from ._base import Cause, Match

__all__ = ["CATALOG", "BY_ID", "Cause", "Match"]


def _discover() -> tuple[Cause, ...]:
    found = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        cause = getattr(module, "CAUSE", None)
        if not isinstance(cause, Cause):
            raise TypeError(f"{module.__name__} defines no CAUSE")
        found.append(cause)
    ids = [c.id for c in found]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise ValueError(f"duplicate cause ids: {sorted(duplicates)}")
    return tuple(sorted(found, key=lambda c: (c.precedence, c.id)))


#: Every cause, most specific first.
CATALOG: tuple[Cause, ...] = _discover()
BY_ID = {c.id: c for c in CATALOG}
