"""Where the CLI's inputs come from. Each source yields *named inputs*, in the order they are
reported, or the error that kept one from being read:

* local paths: a file; a directory, walked for regular files with a log suffix (every
  directory that cannot be listed is named, and a FIFO or device inside is never opened);
  ``-`` (stdin) and any other stream named on the command line (``/dev/stdin``, a FIFO,
  process substitution), read in this process when its turn comes;
* the log files of a trail's S3 bucket in a window (:mod:`.s3_trail`), downloaded a few at a time;
* CloudTrail LookupEvents pages (:mod:`.lookup_events`).

Everything is read within the limit (``--max-file-mb``): never more than ``limit + 1`` bytes
of a file, a stream, an object or (in :mod:`auditor.documents`) of decompressed output.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional

from ..aws import error_code
from .documents import LOG_SUFFIXES, Unreadable, read_bounded, too_large

__all__ = ["Events", "Failed", "LocalFile", "Loaded", "Stream", "describe", "local_inputs", "page", "prepare", "read",
           "s3_objects", "walk"]


@dataclass(frozen=True, slots=True)
class LocalFile:
    """A regular file, read (bounded) where it is processed: maybe in a worker process."""

    name: str


@dataclass(frozen=True, slots=True)
class Stream:
    """Stdin (``path`` None) or a path that is not a regular file: read in this process."""

    name: str
    path: Optional[str]


@dataclass(frozen=True, slots=True)
class Loaded:
    """Bytes already read (a stream, an S3 object), not yet decompressed."""

    name: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Events:
    """One LookupEvents page: (event id, CloudTrailEvent JSON) pairs; records are named ``<prefix>:<event id>``."""

    name: str
    prefix: str
    events: list


@dataclass(frozen=True, slots=True)
class Failed:
    """An input that could not be read at all, and why."""

    name: str
    reason: str
    too_large: bool = False


def describe(exc: BaseException, width: int = 200) -> str:
    """A short, one-line reason: the AWS error code and message when there is one."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and isinstance(response.get("Error"), dict):
        message = response["Error"].get("Message") or ""
        text = f"{error_code(exc)}: {message}".strip(": ") or type(exc).__name__
    elif isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _failed(name: str, exc: OSError) -> Failed:
    return Failed(name, exc.strerror or describe(exc))


# ---------------------------------------------------------------------------------------------
# Local paths
# ---------------------------------------------------------------------------------------------
def local_inputs(paths: Iterable[str]) -> list:
    """The inputs the command line names, directories expanded (file names only: nothing is read yet)."""
    out: list = []
    for raw in paths:
        if raw == "-":
            out.append(Stream("<stdin>", None))
            continue
        try:
            mode = os.stat(raw).st_mode
        except OSError as exc:
            out.append(_failed(raw, exc))
            continue
        except ValueError:  # an embedded NUL
            out.append(Failed(raw, "not a valid path"))
            continue
        if stat.S_ISDIR(mode):
            out.extend(walk(raw))
        elif stat.S_ISREG(mode):
            out.append(LocalFile(raw))
        else:  # /dev/stdin, a FIFO, process substitution (/dev/fd/63): asked for by name, so read
            out.append(Stream(raw, raw))
    return out


def walk(directory: str) -> list:
    """Every regular file with a log suffix under ``directory`` (symbolic links to files are
    followed, to directories not), and a ``Failed`` for every directory that could not be
    listed, in path order (the order ``sorted(Path(d).rglob("*"))`` gives)."""
    top = str(Path(directory))  # names as pathlib spells them ("./logs/" -> "logs"), as before
    found: list[tuple[list[str], object]] = []

    def unlistable(exc: OSError) -> None:
        where = os.fspath(exc.filename) if exc.filename is not None else top
        found.append((where.split(os.sep), _failed(where, exc)))

    for root, dirs, files in os.walk(top, onerror=unlistable):
        for name in files:
            if not name.endswith(LOG_SUFFIXES):
                continue
            path = os.path.join(root, name)
            try:
                mode = os.stat(path).st_mode
            except OSError as exc:  # a dangling link, a file gone since the listing
                found.append((path.split(os.sep), _failed(path, exc)))
                continue
            if stat.S_ISREG(mode):  # never a FIFO, a socket or a device found by walking
                found.append((path.split(os.sep), LocalFile(path)))
    found.sort(key=lambda pair: pair[0])
    return [item for _, item in found]


def read(item, limit: int) -> "bytes | Failed":
    """The bytes of a LocalFile, Stream or Loaded input, at most ``limit``; else why not."""
    kind = type(item)
    if kind is Loaded:
        return item.data if len(item.data) <= limit else _too_large(item.name, limit)
    if kind is LocalFile:
        return _read_path(item.name, limit, regular_only=True)
    if item.path is None:
        return _read_stdin(limit)
    return _read_path(item.path, limit, regular_only=False, name=item.name)


def prepare(item, limit: int):
    """Streams are read here, in this process (a worker could not reach this process's stdin
    or its inherited descriptors); everything else passes through."""
    if type(item) is not Stream:
        return item
    try:
        data = read(item, limit)
    except MemoryError:
        return Failed(item.name, "out of memory while reading it")
    return data if type(data) is Failed else Loaded(item.name, data)


def _too_large(name: str, limit: int) -> Failed:
    return Failed(name, too_large(name, limit).reason, True)


def _read_path(path: str, limit: int, regular_only: bool, name: Optional[str] = None) -> "bytes | Failed":
    name = name or path
    flags = os.O_RDONLY | (getattr(os, "O_NONBLOCK", 0) if regular_only else 0)
    try:
        fd = os.open(path, flags)
        with open(fd, "rb", buffering=0) as handle:
            status = os.fstat(fd)
            regular = stat.S_ISREG(status.st_mode)
            if regular_only and not regular:  # replaced by a FIFO since the walk: never wait on it
                return Failed(name, "not a regular file")
            data = read_bounded(handle, limit, status.st_size if regular else None)
    except OSError as exc:
        return _failed(name, exc)
    return _too_large(name, limit) if data is None else data


def _read_stdin(limit: int) -> "bytes | Failed":
    try:
        with open(0, "rb", buffering=0, closefd=False) as handle:
            data = read_bounded(handle, limit)
    except OSError as exc:
        return _failed("<stdin>", exc)
    return _too_large("<stdin>", limit) if data is None else data


# ---------------------------------------------------------------------------------------------
# S3 objects and LookupEvents pages
# ---------------------------------------------------------------------------------------------
def s3_objects(trail, keys, limit: int, workers: int, in_flight: int) -> Iterator["Loaded | Failed"]:
    """The objects ``keys`` names (keys, or (key, listed size) pairs), downloaded concurrently,
    in order; each one's bytes, or why it could not be read (without a download when the
    listing already says it is too large)."""
    for url, got in trail.fetch(keys, workers=workers, in_flight=in_flight, limit=limit):
        if type(got) is bytes:
            yield Loaded(url, got)
        elif isinstance(got, Unreadable):
            yield Failed(url, got.reason, got.too_large)
        else:
            yield Failed(url, describe(got))


def page(name: str, prefix: str, events: list, limit: int) -> "Events | Failed":
    """One LookupEvents page as an input, held to the same limit as a file."""
    size = sum(len(raw) for _, raw in events)
    return _too_large(name, limit) if size > limit else Events(name, prefix, events)
