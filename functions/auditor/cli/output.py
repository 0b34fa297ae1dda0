"""What the user sees. Findings go to stdout, one line each (``table`` or ``jsonl``); stderr
gets the unreadable inputs as they happen, notes, progress (on a terminal only) and, at the
end, the malformed records and the summary.

Every line written to stderr is one line with its control characters escaped: file names,
S3 keys, event ids and error texts come from the input and are never echoed raw.
"""

from __future__ import annotations

import codecs
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from .speedups import dumps

__all__ = ["ENCODE_ERRORS", "INCIDENT_HEADER", "MAX_MALFORMED_SHOWN", "Part", "RENDER", "RENDER_INCIDENT", "Run",
           "TABLE_HEADER", "Tally", "render_jsonl_utf8", "safe"]

MAX_MALFORMED_SHOWN = 20


@dataclass
class Tally:
    """What one input (or the whole run) saw, for the summary."""

    records: int = 0
    findings: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    malformed: list = field(default_factory=list)  # "origin: reason", the first MAX_MALFORMED_SHOWN
    malformed_count: int = 0
    unreadable: list = field(default_factory=list)  # (input name, reason)
    files: int = 0

    def add_malformed(self, origin: str, reason: str) -> None:
        self.malformed_count += 1
        if len(self.malformed) < MAX_MALFORMED_SHOWN:
            self.malformed.append(f"{origin}: {reason}")

    def merge(self, other: "Tally") -> None:
        self.records += other.records
        self.findings.update(other.findings)
        self.skipped.update(other.skipped)
        self.malformed_count += other.malformed_count
        room = MAX_MALFORMED_SHOWN - len(self.malformed)
        if room > 0:
            self.malformed.extend(other.malformed[:room])
        self.unreadable.extend(other.unreadable)
        self.files += other.files


@dataclass
class Part:
    """What one input produced: its rendered findings and its tally (picklable: it comes back
    from worker processes). ``lines`` fill up while the input is read; :meth:`seal` turns them
    into the bytes stdout gets, in the worker, so the main process only copies them out."""

    lines: list = field(default_factory=list)
    tally: Tally = field(default_factory=Tally)
    text: bytes = b""
    units: list = field(default_factory=list)  # --incidents: failures and changes, grouped at the end

    def seal(self, encoding: str = "utf-8", errors: str = "backslashreplace") -> "Part":
        lines = self.lines
        if lines:
            if type(lines[0]) is bytes:  # already encoded where rendered (render_jsonl_utf8)
                lines.append(b"")
                self.text = b"\n".join(lines)
            else:
                lines.append("")
                self.text = "\n".join(lines).encode(encoding, errors)
            self.lines = []
        return self


def _json_escape(error: UnicodeEncodeError) -> tuple[str, int]:
    """A character stdout cannot encode, as JSON's own escape (a surrogate pair beyond the BMP):
    JSON Lines on a non-UTF-8 stdout stay valid JSON with the same values."""
    escaped = []
    for ch in error.object[error.start:error.end]:
        point = ord(ch)
        if point > 0xFFFF:
            point -= 0x10000
            escaped.append(f"\\u{0xD800 + (point >> 10):04x}\\u{0xDC00 + (point & 0x3FF):04x}")
        else:
            escaped.append(f"\\u{point:04x}")
    return "".join(escaped), error.end


codecs.register_error("auditor-json", _json_escape)
#: How each format's lines meet a stdout that cannot encode a character.
ENCODE_ERRORS = {"jsonl": "auditor-json", "table": "backslashreplace"}


def safe(text: Any) -> str:
    """One line of text for the terminal: control, format and other unprintable characters
    (newlines, escape sequences, bidi overrides, lone surrogates) shown as escapes."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape", "backslashreplace").decode("ascii")
                   for ch in text)


# ---------------------------------------------------------------------------------------------
# stdout: one line per finding
# ---------------------------------------------------------------------------------------------
def render_jsonl(finding, call) -> str:
    return finding.to_json()


def render_jsonl_utf8(finding, call) -> bytes:
    """render_jsonl's line, encoded in UTF-8 as ``Part.seal`` would encode it (``jsonl`` on a UTF-8
    stdout): written by msgspec when installed (the same bytes: ``auditor.cli.speedups``)."""
    data = finding.to_dict()
    line = dumps(data)
    if line is None:
        line = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8", ENCODE_ERRORS["jsonl"])
    return line


def _clip(text: str, width: int) -> str:
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= width else text[: width - 1] + "…"


def render_table(finding, call) -> str:
    principal = finding.principal.arn
    short = principal.rsplit(":", 1)[-1] if principal else "-"
    return "  ".join(
        (
            _clip(finding.event_time, 20).ljust(20),
            _clip(f"{finding.service}:{finding.action}", 34).ljust(34),
            _clip(finding.cause, 34).ljust(34),
            _clip(finding.confidence, 6).ljust(6),
            _clip(short, 36).ljust(36),
            _clip(finding.resource or "-", 60),
        )
    )


RENDER: dict[str, Callable] = {"jsonl": render_jsonl, "table": render_table}
TABLE_HEADER = "  ".join(
    ("TIME".ljust(20), "CALL".ljust(34), "CAUSE".ljust(34), "CONF".ljust(6), "PRINCIPAL".ljust(36), "RESOURCE")
)


# ---------------------------------------------------------------------------------------------
# stdout with --incidents: one line per incident, oldest first
# ---------------------------------------------------------------------------------------------
def render_incident_jsonl(incident) -> str:
    import json

    return json.dumps(incident.to_dict(), ensure_ascii=False, separators=(",", ":"))


def render_incident_table(incident) -> str:
    from ..incidents import iso

    change = incident.attribution.change
    if change:
        actor = change["actor"].rsplit(":", 1)[-1]
        actor = actor.removeprefix("assumed-role/").removeprefix("user/")
        started = f"{change['action']} by {actor}, {change['lead']} before"
    else:
        started = "-"
    return "  ".join(
        (
            _clip(incident.status, 8).ljust(8),
            _clip(iso(incident.first_failure), 20).ljust(20),
            _clip(iso(incident.last_failure), 20).ljust(20),
            str(incident.failures).rjust(8),
            str(incident.principal_count).rjust(7),
            _clip(incident.cause, 34).ljust(34),
            _clip(incident.root.label, 70).ljust(70),
            _clip(started, 80),
        )
    )


RENDER_INCIDENT: dict[str, Callable] = {"jsonl": render_incident_jsonl, "table": render_incident_table}
INCIDENT_HEADER = "  ".join(
    ("STATUS".ljust(8), "FIRST FAILURE".ljust(20), "LAST FAILURE".ljust(20), "FAILURES", "CALLERS", "CAUSE".ljust(34),
     "ROOT CAUSE".ljust(70), "STARTED BY")
)


# ---------------------------------------------------------------------------------------------
# The run: findings as they come, problems as they happen, the summary at the end
# ---------------------------------------------------------------------------------------------
class Run:
    """Writes findings as they come, keeps the tally, shows progress on a terminal."""

    def __init__(self, fmt: str, quiet: bool, out, err, expected: int = 0, unit: str = "file(s)",
                 header: str = TABLE_HEADER, collect: Callable[[list], None] | None = None):
        self.out, self.err = out, err
        self.sink = getattr(out, "buffer", None)  # sealed parts are bytes: written below the text layer
        self.encoding = getattr(out, "encoding", None) or "utf-8"
        self.quiet = quiet
        self.progress = _isatty(err) and not quiet
        self.total, self.expected, self.done = Tally(), expected, 0
        self.started = time.monotonic()
        self.unit = unit
        self.fmt = fmt
        self.collect = collect  # --incidents: receives each part's units
        if fmt == "table" and header:
            self.write((header + "\n").encode(self.encoding, "backslashreplace"))

    def write(self, data: bytes) -> None:
        """Bytes to stdout, in order (the text layer is never written to, so never ahead of them)."""
        if self.sink is not None:
            self.sink.write(data)
        else:
            self.out.write(data.decode(self.encoding, "replace"))

    def say(self, text: str) -> None:
        """One line on stderr (over the progress line on a terminal)."""
        self.err.write(f"{chr(13) if self.progress else ''}auditor: {safe(text)}\n")

    def note(self, text: str, always: bool = False) -> None:
        """An informational line on stderr: on a terminal only, unless ``always``."""
        if always or self.progress:
            self.say(text)

    def emit(self, part: Part, counted: bool = True) -> None:
        if part.lines:  # not sealed (a part made here)
            part.seal(self.encoding)
        if part.text:
            self.write(part.text)
        if part.units and self.collect is not None:
            self.collect(part.units)
        self.total.merge(part.tally)
        self.done += counted
        for name, reason in part.tally.unreadable:
            self.say(f"cannot read {name}: {reason}")
        if self.progress:
            of = f"/{self.expected}" if self.expected else ""
            self.err.write(f"\r{self.done}{of} {self.unit.replace('(s)', 's')}, {self.total.records} records, "
                           f"{sum(self.total.findings.values())} findings")
            self.err.flush()

    def failed(self, name: str, reason: str) -> None:
        """An input that could not be read at all (not counted as one read)."""
        part = Part()
        part.tally.unreadable.append((name, reason))
        self.emit(part, counted=False)

    @property
    def unreadable(self) -> int:
        return len(self.total.unreadable)

    def finish(self) -> None:
        self.out.flush()
        if self.sink is not None:
            self.sink.flush()
        if self.progress:
            self.err.write("\n")
        total, err = self.total, self.err
        if total.malformed_count:
            err.write(f"auditor: {total.malformed_count} malformed record(s) skipped:\n")
            for line in total.malformed:
                err.write(f"  {safe(line)}\n")
            if total.malformed_count > len(total.malformed):
                err.write(f"  ... and {total.malformed_count - len(total.malformed)} more\n")
        if self.quiet:
            return
        seconds = time.monotonic() - self.started
        findings = sum(total.findings.values())
        err.write(
            f"auditor: {total.files} {self.unit}, {total.records} record(s) in {seconds:.2f} s: {findings} finding(s), "
            f"{total.skipped['successful call']} successful call(s) skipped, "
            f"{total.skipped['other service']} other-service record(s) skipped, {total.malformed_count} malformed, "
            f"{len(total.unreadable)} unreadable input(s)\n"
        )
        for cause, count in total.findings.most_common():
            err.write(f"  {count:>8}  {safe(cause)}\n")


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
