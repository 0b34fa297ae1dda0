"""File bytes -> CloudTrail records: gzip or plain; a CloudTrail log file, a JSON array, one
EventBridge event or bare record, JSON Lines of any of those, or Athena query results (CSV).

Used by the CLI only; the Lambda receives one record per event. Nothing here raises for bad
input: what cannot be read becomes a ``Malformed`` outcome naming where it came from.
"""

from __future__ import annotations

import gzip
import json
from typing import Any, Iterator

from .records import Malformed, Outcome, json_type, parse_record

__all__ = ["LOG_SUFFIXES", "iter_documents", "iter_outcomes"]


def iter_documents(data: bytes, name: str) -> Iterator[tuple[str, Any]]:
    """Yield ``(origin, record)`` for every record in a file's bytes.

    Accepts gzip or plain; a CloudTrail log file ``{"Records": [...]}``, a JSON array, one
    EventBridge event, one bare record, or JSON Lines of any of those. Undecodable content
    yields a single ``Malformed`` in place of a record.
    """
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, ValueError) as exc:
            yield f"{name}", Malformed(name, f"not a readable gzip file ({exc})")
            return
    if name.endswith((".csv", ".csv.gz")):
        yield from _iter_athena_csv(data, name)
        return
    try:
        doc = json.loads(data)
    except RecursionError:
        yield name, Malformed(name, "JSON nested too deeply")
        return
    except ValueError:
        yield from _iter_json_lines(data, name)
        return
    yield from _iter_doc(doc, name)


def _iter_doc(doc: Any, name: str, line: int | None = None) -> Iterator[tuple[str, Any]]:
    where = name if line is None else f"{name}:{line}"
    if type(doc) is dict:
        records = doc.get("Records")
        if records is not None and "eventSource" not in doc:
            if type(records) is not list:
                yield where, Malformed(where, "Records is not an array")
                return
            for i, rec in enumerate(records):
                yield f"{where}#{i}", rec
            return
        yield where if line is not None else f"{where}#0", doc
    elif type(doc) is list:
        for i, rec in enumerate(doc):
            yield f"{where}#{i}", rec
    else:
        yield where, Malformed(where, f"document is a JSON {json_type(doc)}, not a CloudTrail record or log")


def _iter_json_lines(data: bytes, name: str) -> Iterator[tuple[str, Any]]:
    for number, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            doc = json.loads(raw)
        except RecursionError:
            yield f"{name}:{number}", Malformed(f"{name}:{number}", "JSON nested too deeply")
            continue
        except ValueError as exc:
            yield f"{name}:{number}", Malformed(f"{name}:{number}", f"line is not JSON ({_short(exc)})")
            continue
        yield from _iter_doc(doc, name, number)


def _iter_athena_csv(data: bytes, name: str) -> Iterator[tuple[str, Any]]:
    """Athena query results (CSV with a header) whose ``record`` column holds each record's JSON."""
    import csv
    import io

    try:
        rows = csv.reader(io.StringIO(data.decode("utf-8", "replace"), newline=""))
        header = next(rows, None)
    except csv.Error as exc:
        yield name, Malformed(name, f"not a readable CSV file ({exc})")
        return
    if not header or "record" not in header:
        yield name, Malformed(name, "CSV without a 'record' column (see the README's Athena query)")
        return
    column = header.index("record")
    for number, row in enumerate(rows, start=2):
        where = f"{name}:{number}"
        try:
            yield where, json.loads(row[column])
        except (IndexError, ValueError, RecursionError):
            yield where, Malformed(where, "the record column is not JSON")


def _short(exc: Exception) -> str:
    return str(exc).split(":", 1)[0][:80]


def iter_outcomes(data: bytes, name: str) -> Iterator[Outcome]:
    """Every outcome in one file's bytes."""
    for origin, rec in iter_documents(data, name):
        yield rec if type(rec) is Malformed else parse_record(rec, origin)


#: File names the CLI reads when it walks a directory.
LOG_SUFFIXES = (".json", ".json.gz", ".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz", ".gz", ".csv")
