"""The command line: the Lambda's classifier over CloudTrail history, no AWS needed.

    auditor classify PATH... [--format table|jsonl] [--jobs N]
    auditor classify s3://bucket/prefix/ [--since 7d] [--until ...] [--accounts ...] [--regions ...]
    auditor lookup [--since 24h] [--regions us-east-1,eu-west-1]
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


class Run:
    """Writes findings as they come, keeps the tally, shows progress on a terminal."""

    def __init__(self, args: argparse.Namespace, expected: int = 0):
        self.out, self.err = sys.stdout, sys.stderr
        self.progress = self.err.isatty() and not args.quiet
        self.total, self.expected, self.done = Tally(), expected, 0
        self.started = time.monotonic()
        self.quiet = args.quiet
        if args.format == "table":
            self.out.write(TABLE_HEADER + "\n")

    def emit(self, lines: list[str], tally: Tally) -> None:
        if lines:
            self.out.write("\n".join(lines))
            self.out.write("\n")
        self.total.merge(tally)
        self.done += 1
        for problem in tally.unreadable:
            self.err.write(f"auditor: cannot read {problem}\n")
        if self.progress:
            of = f"/{self.expected}" if self.expected else ""
            self.err.write(f"\r{self.done}{of} files, {self.total.records} records, {sum(self.total.findings.values())} findings")
            self.err.flush()

    def finish(self) -> int:
        self.out.flush()
        if self.progress:
            self.err.write("\n")
        _summary(self.total, time.monotonic() - self.started, self.err, self.quiet)
        return EXIT_UNREADABLE if self.total.unreadable else EXIT_OK


def cmd_classify(args: argparse.Namespace) -> int:
    remote = [p for p in args.paths if p.startswith("s3://")]
    items = list(_inputs([p for p in args.paths if not p.startswith("s3://")]))
    run = Run(args, expected=len(items))
    for lines, tally in _results(items, args.format, args.jobs):
        run.emit(lines, tally)
    if remote:
        _classify_s3(remote, args, run)
    return run.finish()


def _classify_s3(urls: list[str], args: argparse.Namespace, run: Run) -> None:
    from .history import TrailBucket, parse_when, split_s3_url

    now = time.time()
    from datetime import datetime, timezone

    until = parse_when(args.until) if args.until else datetime.fromtimestamp(now, timezone.utc)
    since = parse_when(args.since or "24h")
    accounts = set(args.accounts.split(",")) if args.accounts else None
    regions = set(args.regions.split(",")) if args.regions else None
    for url in urls:
        bucket, prefix = split_s3_url(url)
        try:
            trail = TrailBucket(bucket, prefix)
            keys = [k for k, _ in trail.keys(since, until, accounts, regions)]
        except Exception as exc:  # noqa: BLE001 - the bucket itself cannot be listed
            run.emit([], Tally(unreadable=[f"{url}: {type(exc).__name__}: {exc}"]))
            continue
        run.expected += len(keys)
        for name, data in trail.fetch(keys, workers=8, in_flight=max(8, 2 * args.jobs)):
            if isinstance(data, Exception):
                run.emit([], Tally(unreadable=[f"{name}: {type(data).__name__}: {data}"]))
            else:
                run.emit(*process_bytes(name, data, args.format))


def cmd_lookup(args: argparse.Namespace) -> int:
    import boto3

    from .history import lookup_records, parse_when

    since, until = parse_when(args.since), (parse_when(args.until) if args.until else parse_when("0m"))
    regions = args.regions.split(",") if args.regions else [boto3.session.Session().region_name or "us-east-1"]
    run = Run(args, expected=len(regions))
    for region in regions:
        client = boto3.client("cloudtrail", region_name=region)
        try:
            data = "\n".join(lookup_records(client, since, until)).encode()
        except Exception as exc:  # noqa: BLE001 - one region failing does not stop the others
            run.emit([], Tally(unreadable=[f"LookupEvents in {region}: {type(exc).__name__}: {exc}"]))
            continue
        run.emit(*process_bytes(f"lookup:{region}", data, args.format) if data else ([], Tally(files=1)))
    return run.finish()


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
    p.add_argument("--since", help="s3:// paths: first day to read (24h, 7d, 2026-11-20, ...; default 24h)")
    p.add_argument("--until", help="s3:// paths: last day to read (default now)")
    p.add_argument("--accounts", help="s3:// paths: comma-separated account ids to read (default all)")
    p.add_argument("--regions", help="s3:// paths: comma-separated regions to read (default all)")
    p.set_defaults(run=cmd_classify)
    lk = sub.add_parser("lookup", help="classify recent Secrets Manager and KMS events from CloudTrail LookupEvents")
    lk.add_argument("--since", default="24h", help="how far back (24h, 7d, an ISO time; LookupEvents keeps 90 days)")
    lk.add_argument("--until", help="end of the window (default now)")
    lk.add_argument("--regions", help="comma-separated regions (default: the configured region)")
    lk.add_argument("--format", choices=("table", "jsonl"), default="table")
    lk.add_argument("--quiet", action="store_true", help="no summary or progress on stderr")
    lk.set_defaults(run=cmd_lookup)
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
