"""Faster JSON and gzip for the CLI, used when installed: msgspec parses the inputs and writes the
JSON Lines, zlib-ng decompresses gzip. Both are the CLI's dependencies only (requirements.txt):
the Lambda function never imports this module, and without them (or with ``AUDITOR_STDLIB=1`` in
the environment, which the benchmark and a test use to compare) the standard library does the
same work with the same results.

The same results, because each is used only where it gives what the standard library gives:

* ``loads``: msgspec reads exactly the JSON the standard library reads, to the same values
  (integers of any size included). What it refuses (NaN and Infinity, a number beyond a float's
  range, lone surrogates, a byte order mark, UTF-16, anything malformed, nesting deeper than the
  interpreter's recursion limit) goes to ``json.loads``, whose answer or error stands. Only a
  document nested within a few levels of that limit (about 1,000) can fare differently.
* ``dumps``: msgspec writes what ``json.dumps(value, ensure_ascii=False, separators=(",", ":"))``
  writes, encoded in UTF-8, for what a finding holds (strings, booleans, null, lists and objects
  with string keys; no floats, whose spelling may differ). A value it refuses (a lone surrogate,
  which the parser never lets through anyway) is written by the standard library.
* ``gzip``: zlib-ng is a drop-in for zlib; the CLI reads with it only streams that decompress
  cleanly, and reads any other (truncated, damaged) again with zlib, so what is salvaged and how
  the damage is named do not change.
"""

from __future__ import annotations

import importlib
import json
import os
import zlib
from typing import Any

__all__ = ["STDLIB", "dumps", "gzip_module", "libraries", "loads", "msgspec"]

#: ``AUDITOR_STDLIB=1``: the standard library only, whatever is installed.
STDLIB = os.environ.get("AUDITOR_STDLIB", "") not in ("", "0")


def _optional(name: str):
    if STDLIB:
        return None
    try:
        return importlib.import_module(name)
    except ImportError:  # not installed (or not for this interpreter): the standard library does it
        return None


msgspec = _optional("msgspec")
_zlib_ng = _optional("zlib_ng.zlib_ng")

#: The zlib module gzip inputs are decompressed with first.
gzip_module = _zlib_ng or zlib


def libraries() -> str:
    """What this process uses, for the benchmark's report."""
    used = [f"{name} {getattr(module, '__version__', '')}".strip()
            for name, module in (("msgspec", msgspec), ("zlib-ng", _zlib_ng and importlib.import_module("zlib_ng")))
            if module is not None]
    return ", ".join(used) or "the standard library"


if msgspec is not None:
    _decode, _encode = msgspec.json.Decoder().decode, msgspec.json.Encoder().encode
    _Refused = (msgspec.DecodeError, RecursionError)  # DecodeError: ValidationError (out of range) too

    def loads(data: bytes) -> Any:
        """``json.loads(data)`` (see the module's docstring)."""
        try:
            return _decode(data)
        except _Refused:  # what msgspec does not read: the standard library's answer, or error, stands
            return json.loads(data)

    def dumps(value: Any) -> bytes | None:
        """``json.dumps(value, ensure_ascii=False, separators=(",", ":"))`` in UTF-8, or None when
        msgspec cannot write it (the caller writes it with the standard library)."""
        try:
            return _encode(value)
        except (TypeError, ValueError, OverflowError):  # UnicodeEncodeError (a lone surrogate) is a ValueError
            return None
else:
    loads = json.loads

    def dumps(value: Any) -> bytes | None:
        return None
