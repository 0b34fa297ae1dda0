"""The command line: the Lambda's classifier over CloudTrail history, no AWS needed.

    auditor classify PATH... [--format table|jsonl] [--jobs N]
    auditor causes [--format table|jsonl]

Findings go to stdout; the summary, malformed records, unreadable inputs and progress go to
stderr. Exit status: 0 when every input was read, 2 when one could not be (the others are
still processed), 1 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

from .classify import classify
from .trail import FailedCall, Skipped, iter_outcomes

EXIT_OK, EXIT_USAGE, EXIT_UNREADABLE = 0, 1, 2
MAX_MALFORMED_SHOWN = 20


@dataclass
class Tally:
    """What one run saw, for the summary."""

    records: int = 0
    findings: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    malformed: list = field(default_factory=list)
    malformed_count: int = 0
    unreadable: list = field(default_factory=list)
    files: int = 0

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


# ---------------------------------------------------------------------------------------------
# One file -> (rendered findings, tally). Module-level so worker processes can run it.
# ---------------------------------------------------------------------------------------------
def process_bytes(name: str, data: bytes, fmt: str) -> tuple[list[str], Tally]:
    tally = Tally(files=1)
    lines: list[str] = []
    render = _RENDER[fmt]
    for outcome in iter_outcomes(data, name):
        tally.records += 1
        kind = type(outcome)
        if kind is FailedCall:
            finding = classify(outcome)
            tally.findings[finding.cause] += 1
            lines.append(render(finding, outcome))
        elif kind is Skipped:
            tally.skipped[outcome.reason] += 1
        else:
            tally.malformed_count += 1
            if len(tally.malformed) < MAX_MALFORMED_SHOWN:
                tally.malformed.append(f"{outcome.origin}: {outcome.reason}")
    return lines, tally


def _process_file(args: tuple[str, str]) -> tuple[list[str], Tally]:
    path, fmt = args
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        return [], Tally(unreadable=[f"{path}: {exc.strerror or exc}"])
    return process_bytes(path, data, fmt)


def _render_jsonl(finding, call) -> str:
    return finding.to_json()


def _clip(text: str, width: int) -> str:
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= width else text[: width - 1] + "…"


def _render_table(finding, call) -> str:
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


_RENDER = {"jsonl": _render_jsonl, "table": _render_table}
TABLE_HEADER = "  ".join(
    ("TIME".ljust(20), "CALL".ljust(34), "CAUSE".ljust(34), "CONF".ljust(6), "PRINCIPAL".ljust(36), "RESOURCE")
)


# ---------------------------------------------------------------------------------------------
# classify
# ---------------------------------------------------------------------------------------------
def _inputs(paths: Sequence[str]) -> Iterator[str | tuple[str, bytes | OSError]]:
    """File paths to read (lazily, maybe in a worker), or (name, bytes|error) already read."""
    for raw in paths:
        if raw == "-":
            yield ("<stdin>", sys.stdin.buffer.read())
            continue
        if os.path.isdir(raw):
            for name, _ in _walk(raw):
                yield name
        elif os.path.exists(raw):
            yield raw
        else:
            yield (raw, FileNotFoundError(2, "No such file or directory"))


def _walk(directory: str) -> Iterator[tuple[str, None]]:
    from pathlib import Path

    from .trail import LOG_SUFFIXES

    for path in sorted(Path(directory).rglob("*")):
        if path.is_file() and path.name.endswith(LOG_SUFFIXES):
            yield str(path), None


def _results(items: list, fmt: str, jobs: int) -> Iterator[tuple[list[str], Tally]]:
    files = [i for i in items if isinstance(i, str)]
    if jobs > 1 and len(files) > 1:
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(max_workers=jobs)
        pending = iter(pool.map(_process_file, [(f, fmt) for f in files], chunksize=1))
    else:
        pool, pending = None, (_process_file((f, fmt)) for f in files)
    try:
        for item in items:
            if isinstance(item, str):
                yield next(pending)
            else:
                name, data = item
                if isinstance(data, OSError):
                    yield [], Tally(unreadable=[f"{name}: {data.strerror or data}"])
                else:
                    yield process_bytes(name, data, fmt)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def cmd_classify(args: argparse.Namespace) -> int:
    items = list(_inputs(args.paths))
    out = sys.stdout
    err = sys.stderr
    progress = err.isatty() and not args.quiet
    total = Tally()
    started = time.monotonic()
    if args.format == "table":
        out.write(TABLE_HEADER + "\n")
    for done, (lines, tally) in enumerate(_results(items, args.format, args.jobs), start=1):
        if lines:
            out.write("\n".join(lines))
            out.write("\n")
        total.merge(tally)
        for problem in tally.unreadable:
            err.write(f"auditor: cannot read {problem}\n")
        if progress:
            err.write(f"\r{done}/{len(items)} files, {total.records} records, {sum(total.findings.values())} findings")
            err.flush()
    out.flush()
    if progress:
        err.write("\n")
    _summary(total, time.monotonic() - started, err, args.quiet)
    return EXIT_UNREADABLE if total.unreadable else EXIT_OK


def _summary(total: Tally, seconds: float, err, quiet: bool) -> None:
    if total.malformed_count:
        err.write(f"auditor: {total.malformed_count} malformed record(s) skipped:\n")
        for line in total.malformed:
            err.write(f"  {line}\n")
        if total.malformed_count > len(total.malformed):
            err.write(f"  ... and {total.malformed_count - len(total.malformed)} more\n")
    if quiet:
        return
    findings = sum(total.findings.values())
    err.write(
        f"auditor: {total.files} file(s), {total.records} record(s) in {seconds:.2f} s: {findings} finding(s), "
        f"{total.skipped['successful call']} successful call(s) skipped, "
        f"{total.skipped['other service']} other-service record(s) skipped, {total.malformed_count} malformed, "
        f"{len(total.unreadable)} unreadable input(s)\n"
    )
    for cause, count in total.findings.most_common():
        err.write(f"  {count:>8}  {cause}\n")


# ---------------------------------------------------------------------------------------------
# causes
# ---------------------------------------------------------------------------------------------
def cmd_causes(args: argparse.Namespace) -> int:
    from .causes import CATALOG

    for cause in CATALOG:
        if args.format == "jsonl":
            row = {"id": cause.id, "title": cause.title, "severity": cause.severity, "topic": cause.topic,
                   "doc_url": cause.doc_url, "precedence": cause.precedence}
            sys.stdout.write(json.dumps(row) + "\n")
        else:
            sys.stdout.write(f"{cause.id:<38} {cause.severity:<9} {cause.title}\n")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="auditor", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("classify", help="classify failed calls in CloudTrail files, directories or stdin (-)")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--format", choices=("table", "jsonl"), default="table")
    p.add_argument("--jobs", type=int, default=min(os.cpu_count() or 1, 8),
                   help="worker processes for many files (default: CPU count)")
    p.add_argument("--quiet", action="store_true", help="no summary or progress on stderr")
    p.set_defaults(run=cmd_classify)
    c = sub.add_parser("causes", help="list the cause catalog")
    c.add_argument("--format", choices=("table", "jsonl"), default="table")
    c.set_defaults(run=cmd_causes)
    return parser


def main(argv: Iterable[str] | None = None) -> int:
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    try:
        return args.run(args)
    except BrokenPipeError:  # `auditor classify ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
