"""File bytes -> CloudTrail records: gzip or plain; a CloudTrail log file, a JSON array, one
EventBridge event or bare record, JSON Lines of any of those, or Athena query results (CSV).

Used by the CLI only; the Lambda receives one record per event. Nothing here raises for bad
input: a record that cannot be read becomes a ``Malformed`` outcome naming where it came from,
and an input that cannot be read in full (larger than the limit, a truncated or damaged gzip
stream, JSON that breaks off) ends with one ``Unreadable`` (a ``Malformed`` whose origin is the
input's name) after every record that could be recovered from it.

Memory is bounded by ``limit``: at most ``limit + 1`` decompressed bytes are ever produced
(a gzip bomb stops there), and the parsed document is a small multiple of that.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass
from typing import Any, Iterator

from ..records import Malformed, Outcome, json_type, parse_record
from .speedups import gzip_module, loads

__all__ = ["DEFAULT_LIMIT", "LOG_SUFFIXES", "MiB", "Unreadable", "iter_documents", "iter_outcomes", "read_bounded",
           "too_large"]

MiB = 1 << 20
#: The default bound on one input's bytes, compressed and decompressed (the CLI's --max-file-mb).
DEFAULT_LIMIT = 128 * MiB


@dataclass(frozen=True, slots=True)
class Unreadable(Malformed):
    """The input itself could not be read in full; it comes last, after what could be read."""

    too_large: bool = False


#: How much a bounded read asks for at a time when the size is not known in advance.
CHUNK = MiB


def read_bounded(stream, limit: int, size: int | None = None) -> bytes | None:
    """Everything ``stream`` (anything with ``read(n)``: a file, a pipe, an S3 body) holds, or
    None when that is more than ``limit`` bytes. Never reads more than ``limit + 1`` bytes.

    ``size``, when known (a regular file's length, an object's Content-Length), is read in one
    call; otherwise the stream is read ``CHUNK`` bytes at a time.
    """
    if size is not None and size > limit:
        return None
    want = limit + 1
    first = stream.read(min(want, size + 1 if size is not None else CHUNK))
    if not first:
        return b""
    chunks = [first]
    total = len(first)
    while total <= limit:
        chunk = stream.read(min(CHUNK, want - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    if total > limit:
        return None
    return first if len(chunks) == 1 else b"".join(chunks)


def too_large(name: str, limit: int, decompressed: bool = False) -> Unreadable:
    mib = limit / MiB
    mib = f"{mib:.0f}" if mib == round(mib) else f"{mib:.4g}"
    return Unreadable(name, f"larger than the {mib} MiB limit" + (" once decompressed" if decompressed else ""), True)


def iter_documents(data: bytes, name: str, limit: int = DEFAULT_LIMIT) -> Iterator[tuple[str, Any]]:
    """``(origin, record)`` for every record in a file's bytes, then, if the file could not be
    read in full, ``(name, Unreadable)``.

    Accepts gzip (one or several members) or plain; a CloudTrail log file ``{"Records": [...]}``,
    a JSON array, one EventBridge event, one bare record, JSON Lines or concatenated documents
    of any of those. A record that cannot be decoded is a ``Malformed`` in place of the record.
    The bytes are decompressed and parsed when this is called (a plain function returning the
    records' iterator: no generator between the caller and the records on the common path).
    """
    if len(data) > limit:
        return iter(((name, too_large(name, limit)),))
    problem = None
    if data[:2] == b"\x1f\x8b":
        data, problem = _gunzip(data, limit)
        if data is None:
            return iter(((name, too_large(name, limit, decompressed=True)),))
    records = _iter_text(data, name)
    return records if problem is None else _ending(records, name, problem)


def _ending(records: Iterator[tuple[str, Any]], name: str, problem: str) -> Iterator[tuple[str, Any]]:
    """The records recovered from a damaged gzip stream, then what was wrong with it."""
    count = 0
    for origin, rec in records:
        if type(rec) is Unreadable:
            break  # the JSON breaks off where the gzip stream did: one reason is enough
        count += 1
        yield origin, rec
    yield name, Unreadable(name, problem.format(count=count))


def _gunzip(data: bytes, limit: int) -> tuple[bytes | None, str | None]:
    """(decompressed bytes, None), or (what could be decompressed, the problem's text with a
    ``{count}`` slot), or (None, None) when the output would exceed ``limit`` bytes.

    Every member of a multi-member file is read; zero padding after the last is ignored (as
    gzip(1) does). Never produces more than ``limit + 1`` bytes (and never holds more than that:
    a stream the faster module could not read cleanly is read again by zlib once its output is gone).
    """
    if gzip_module is not zlib:
        found = _gunzip_with(gzip_module, data, limit)
        if found[1] is None:  # read in full (or over the limit): the bytes, or the verdict, are zlib's
            return found
        del found
    return _gunzip_with(zlib, data, limit)


def _gunzip_with(module, data: bytes, limit: int) -> tuple[bytes | None, str | None]:
    """_gunzip with ``module``'s decompressobj (zlib's API)."""
    out: list[bytes] = []
    total = 0
    rest = data
    problem = None
    while True:
        member = rest
        inflate = module.decompressobj(31)
        try:
            chunk = inflate.decompress(member, limit + 1 - total)
        except module.error as exc:
            salvaged = _salvage(member, limit + 1 - total)
            total += len(salvaged)
            if total > limit:
                return None, None
            out.append(salvaged)
            problem = f"not a readable gzip file ({exc})"
            break
        total += len(chunk)
        if total > limit:
            return None, None
        out.append(chunk)
        if not inflate.eof:  # all input consumed (output stayed under max_length) without the end
            problem = "truncated: the gzip stream ends early"
            break
        rest = inflate.unused_data
        if not rest or not rest.strip(b"\0"):
            break
        if rest[:2] != b"\x1f\x8b":
            problem = "unexpected bytes after the gzip stream"
            break
    data = out[0] if len(out) == 1 else b"".join(out)
    if problem is not None:
        problem += "; {count} complete record(s) read before it" if data.strip() else ""
    return data, problem


def _salvage(member: bytes, room: int, step: int = 1 << 14) -> bytes:
    """What one damaged gzip member decompresses to before the error (the slow path): fed a
    piece at a time, and the piece that fails again a byte at a time from the state before it,
    so a bad checksum in the trailer loses nothing."""
    inflate = zlib.decompressobj(31)
    out: list[bytes] = []
    size = 0
    for at in range(0, len(member), step):
        saved = inflate.copy()
        try:
            piece = inflate.decompress(member[at:at + step], room - size)
        except zlib.error:
            inflate = saved
            for byte in range(at, min(at + step, len(member))):
                try:
                    piece = inflate.decompress(member[byte:byte + 1], room - size)
                except zlib.error:
                    break
                out.append(piece)
                size += len(piece)
                if size >= room:
                    break
            break
        out.append(piece)
        size += len(piece)
        if inflate.unconsumed_tail or inflate.eof:
            break
    return b"".join(out)


def _iter_text(data: bytes, name: str) -> Iterator[tuple[str, Any]]:
    if name.endswith((".csv", ".csv.gz")):
        return _iter_athena_csv(data, name)
    try:
        doc = loads(data)
    except RecursionError:
        return iter(((name, Malformed(name, "JSON nested too deeply")),))
    except ValueError:
        return _recover(data, name)
    return _iter_doc(doc, name)


def _iter_doc(doc: Any, name: str, line: int | None = None) -> Iterator[tuple[str, Any]]:
    where = name if line is None else f"{name}:{line}"
    if type(doc) is dict:
        if "Records" in doc and "eventSource" not in doc:  # a log file (a record has an eventSource)
            records = doc["Records"]
            if type(records) is not list:
                yield where, Malformed(where, f"Records is a JSON {json_type(records)}, not an array")
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


# ------------------------------------------------------------------------------------------------
# When the whole is not one JSON document: JSON Lines, concatenated documents, or a document
# that breaks off (a truncated file) whose complete records are still worth reading.
# ------------------------------------------------------------------------------------------------
_DOCUMENT_START = re.compile(rb'^(?:\xef\xbb\xbf)?[ \t\n\r]*(?:\{[ \t\n\r]*"Records"[ \t\n\r]*:[ \t\n\r]*)?\[')
_RECORDS_OPEN = re.compile(r'\{[ \t\n\r]*"Records"[ \t\n\r]*:[ \t\n\r]*\[')
_SPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def _recover(data: bytes, name: str) -> Iterator[tuple[str, Any]]:
    """JSON Lines when the first line is JSON (or nothing else fits); documents one after
    another when the first value spans lines (pretty-printed, concatenated) or a CloudTrail
    log or an array starts the file (a document cut short is read up to where it breaks)."""
    newline = data.find(b"\n")
    if newline >= 0 and _is_json(data[:newline]):
        yield from _iter_json_lines(data, name)
        return
    document = _DOCUMENT_START.match(data) is not None
    if not document and not (newline >= 0 and data.lstrip()[:1] in (b"{", b"[")):
        yield from _iter_json_lines(data, name)
        return
    text = data.decode(json.detect_encoding(data), "replace")
    if text[:1] == "\ufeff":
        text = text[1:]
    if not document and not _spans_lines(text):
        yield from _iter_json_lines(data, name)
        return
    yield from _iter_concatenated(text, name)


def _spans_lines(text: str) -> bool:
    """The first JSON value runs past the first line (pretty-printed): complete, or cut short by
    the end of the text (a pretty-printed record whose file breaks off is one document cut short,
    not lines of JSON that are each broken)."""
    start = _SPACE.match(text).end()
    try:
        _, end = _DECODER.raw_decode(text, start)
    except json.JSONDecodeError as exc:
        if not _runs_to_the_end(text, exc):
            return False
        end = len(text)
    except (ValueError, RecursionError):
        return False
    return "\n" in text[start:end]


def _runs_to_the_end(text: str, exc: json.JSONDecodeError) -> bool:
    """The value ``exc`` stopped in was cut short by the end of ``text`` (not damaged before it)."""
    return exc.pos >= len(text) or exc.msg.startswith("Unterminated string")


def _is_json(line: bytes) -> bool:
    try:
        json.loads(line)
    except (ValueError, RecursionError):
        return False
    return True


def _iter_concatenated(text: str, name: str) -> Iterator[tuple[str, Any]]:
    """Documents one after another (``{"Records": [...]}{"Records": [...]}`` from concatenated
    gzip members, or one document cut short), read record by record: every complete record
    is yielded, and where the JSON breaks off an ``Unreadable`` says after how many."""
    decode, space, end = _DECODER.raw_decode, _SPACE.match, len(text)
    pos, number, count = 0, 0, 0

    def broken(at: int, exc: Exception | None = None) -> tuple[str, Unreadable]:
        """Where the JSON stops making sense: at the end of the text (cut short), or before it."""
        cut = at >= end or isinstance(exc, json.JSONDecodeError) and _runs_to_the_end(text, exc)
        where = "the JSON breaks off" if cut else f"the JSON is damaged at character {at}"
        return name, Unreadable(name, f"{where} after {count} complete record(s)")

    while True:
        pos = space(text, pos).end()
        if pos >= end:
            return
        number += 1
        where = name if number == 1 else f"{name}:{number}"
        opened = _RECORDS_OPEN.match(text, pos)
        if not opened and text[pos] != "[":  # a record or an envelope on its own
            try:
                doc, pos = decode(text, pos)
            except (ValueError, RecursionError) as exc:
                yield broken(pos, exc)
                return
            for item in _iter_doc(doc, where):
                count += 1
                yield item
            continue
        pos = opened.end() if opened else pos + 1
        index = 0
        while True:
            pos = space(text, pos).end()
            if pos >= end:
                yield broken(pos)
                return
            if index == 0 and text[pos] == "]":
                pos += 1
                break
            try:
                rec, pos = decode(text, pos)
            except (ValueError, RecursionError) as exc:
                yield broken(pos, exc)
                return
            yield f"{where}#{index}", rec
            index += 1
            count += 1
            pos = space(text, pos).end()
            if pos < end and text[pos] == ",":
                pos += 1
            elif pos < end and text[pos] == "]":
                pos += 1
                break
            else:
                yield broken(pos)
                return
        if opened:
            pos = space(text, pos).end()
            if pos >= end or text[pos] != "}":
                yield broken(pos)
                return
            pos += 1


def _iter_json_lines(data: bytes, name: str) -> Iterator[tuple[str, Any]]:
    for number, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            doc = loads(raw)
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

    if csv.field_size_limit() < len(data):  # one record can exceed csv's 128 KiB default; the input is bounded
        csv.field_size_limit(len(data))
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
    number = 1
    while True:
        try:
            row = next(rows, None)
        except csv.Error as exc:  # e.g. a quoted field that never ends (a truncated file)
            yield name, Unreadable(name, f"not a readable CSV file after line {number} ({exc})")
            return
        if row is None:
            return
        number += 1
        where = f"{name}:{number}"
        try:
            yield where, json.loads(row[column])
        except (IndexError, ValueError, RecursionError):
            yield where, Malformed(where, "the record column is not JSON")


def _short(exc: Exception) -> str:
    return str(exc).split(":", 1)[0][:80]


def iter_outcomes(data: bytes, name: str, limit: int = DEFAULT_LIMIT) -> Iterator[Outcome]:
    """Every outcome in one file's bytes (an ``Unreadable`` last if it could not be read in full)."""
    for origin, rec in iter_documents(data, name, limit):
        yield rec if isinstance(rec, Malformed) else parse_record(rec, origin)


#: File names the CLI reads when it walks a directory.
LOG_SUFFIXES = (".json", ".json.gz", ".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz", ".gz", ".csv")
