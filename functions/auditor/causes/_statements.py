"""The least-privilege policy statement a remediation prints, and how it is printed (the JSON an
engineer pastes, with ``", "`` and ``": "`` separators)."""

from __future__ import annotations

import functools
import json
from typing import Optional

__all__ = ["policy_statement", "render"]


def policy_statement(action: str, resource: str, condition: Optional[dict] = None) -> dict:
    stmt: dict = {"Effect": "Allow", "Action": action, "Resource": resource}
    if condition:
        stmt["Condition"] = condition
    return stmt


_ENCODER = json.JSONEncoder(separators=(", ", ": "))  # built once: json.dumps with options builds one per call
# The C encoder behind _ENCODER, built once too: _ENCODER.encode builds a new one on every call,
# which costs more than a statement is long (json.encoder.c_make_encoder is None without the _json
# accelerator; then _ENCODER.encode it is). No circular-reference check: statements are built here.
_make_encoder = json.encoder.c_make_encoder
_C_ENCODER = _make_encoder and _make_encoder(None, _ENCODER.default, json.encoder.encode_basestring_ascii, None,
                                             _ENCODER.key_separator, _ENCODER.item_separator, False, False, True)


def render(stmt: Optional[dict]) -> str:
    """A policy statement as the remediation prints it (JSON, ``", "`` and ``": "`` separators)."""
    if not stmt:
        return ""
    # The statements the causes write, memoised: Effect, Action, Resource (strings), and at most one
    # Condition {operator: {key: value}} or Principal {"AWS": arn}; anything else is encoded as it is.
    size = len(stmt)
    if size == 3 or size == 4:
        keys = tuple(stmt)
        if keys == _PLAIN:
            effect, action, resource = stmt.values()
            if type(effect) is str and type(action) is str and type(resource) is str:
                return _render_memo(effect, action, resource)
        elif keys == _CONDITION or keys == _PRINCIPAL:
            effect, action, resource, extra = stmt.values()
            if (type(effect) is str and type(action) is str and type(resource) is str and type(extra) is dict
                    and len(extra) == 1):
                ((name, value),) = extra.items()
                if type(name) is str:
                    if type(value) is str:
                        return _render_memo(effect, action, resource, keys[3], name, value)
                    if type(value) is dict and len(value) == 1:
                        ((inner, leaf),) = value.items()
                        if type(inner) is str and type(leaf) is str:
                            return _render_memo(effect, action, resource, keys[3], name, inner, leaf)
    return _encode(stmt)


_PLAIN = ("Effect", "Action", "Resource")
_CONDITION = _PLAIN + ("Condition",)
_PRINCIPAL = _PLAIN + ("Principal",)


def _encode(stmt: dict) -> str:
    if _C_ENCODER is None:
        return _ENCODER.encode(stmt)
    return "".join(_C_ENCODER(stmt, 0))


# Memoised: a pure function of strings, and a failure stream repeats its statements (the same action
# denied on the same secret or key). Bounded: the strings come from the records.
@functools.lru_cache(maxsize=4096)
def _render_memo(effect: str, action: str, resource: str, extra: str = "", name: str = "", *path: str) -> str:
    """render() of {"Effect": effect, "Action": action, "Resource": resource}, with ``extra`` (Condition or
    Principal) {name: path[0]} or {name: {path[0]: path[1]}} when given."""
    stmt: dict = {"Effect": effect, "Action": action, "Resource": resource}
    if extra:
        stmt[extra] = {name: path[0] if len(path) == 1 else {path[0]: path[1]}}
    return _encode(stmt)
