"""The command line: the Lambda's classifier over CloudTrail history, no AWS needed.

    auditor classify PATH... [--format table|jsonl] [--jobs N]
    auditor classify s3://bucket/[prefix/] [--since 7d] [--until ...] [--accounts ...] [--regions ...]
    auditor classify athena-results.csv            (an Athena query's results: the ``record`` column)
    auditor lookup [--since 24h] [--until ...] [--regions us-east-1,eu-west-1]
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
from datetime import datetime, timedelta, timezone
from typing import Iterable, Iterator, Sequence

from .classify import classify
from .documents import iter_outcomes
from .records import FailedCall, Skipped

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

    from .documents import LOG_SUFFIXES

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

    def __init__(self, args: argparse.Namespace, expected: int = 0, unit: str = "file(s)"):
        self.out, self.err = sys.stdout, sys.stderr
        self.progress = self.err.isatty() and not args.quiet
        self.total, self.expected, self.done = Tally(), expected, 0
        self.started = time.monotonic()
        self.quiet = args.quiet
        self.unit = unit
        if args.format == "table":
            self.out.write(TABLE_HEADER + "\n")

    def note(self, text: str) -> None:
        """An informational line on stderr (terminal only, like progress)."""
        if self.progress:
            self.err.write(f"\rauditor: {text}\n")

    def emit(self, lines: list[str], tally: Tally, counted: bool = True) -> None:
        if lines:
            self.out.write("\n".join(lines))
            self.out.write("\n")
        self.total.merge(tally)
        self.done += counted
        for problem in tally.unreadable:
            self.err.write(f"{chr(13) if self.progress else ''}auditor: cannot read {problem}\n")
        if self.progress:
            of = f"/{self.expected}" if self.expected else ""
            self.err.write(f"\r{self.done}{of} {self.unit.replace('(s)', 's')}, {self.total.records} records, "
                           f"{sum(self.total.findings.values())} findings")
            self.err.flush()

    def finish(self) -> int:
        self.out.flush()
        if self.progress:
            self.err.write("\n")
        _summary(self.total, time.monotonic() - self.started, self.err, self.quiet, self.unit)
        return EXIT_UNREADABLE if self.total.unreadable else EXIT_OK


def cmd_classify(args: argparse.Namespace) -> int:
    remote = [p for p in args.paths if p.startswith("s3://")]
    if remote:
        from .s3logs import parse_when

        try:
            for value in (args.since, args.until):
                if value:
                    parse_when(value)
        except ValueError as exc:
            sys.stderr.write(f"auditor classify: {exc}\n")
            return EXIT_USAGE
    items = list(_inputs([p for p in args.paths if not p.startswith("s3://")]))
    run = Run(args, expected=len(items))
    for lines, tally in _results(items, args.format, args.jobs):
        run.emit(lines, tally)
    for url in remote:
        _classify_s3(url, args, run)
    return run.finish()


# ---------------------------------------------------------------------------------------------
# classify s3://bucket/prefix/: an (organization) trail's bucket, only the days asked for
# ---------------------------------------------------------------------------------------------
S3_DOWNLOADS = 8  # concurrent GETs
S3_IN_FLIGHT = 16  # compressed files held in memory at once (downloading or waiting to be classified)


def s3_window(args: argparse.Namespace, date_part: str = "", now: datetime | None = None) -> tuple[datetime, datetime]:
    """[since, until] for an s3:// URL: the options, else the date the URL names, else the last 24 hours."""
    from .s3logs import parse_when

    now = now or datetime.now(timezone.utc)
    named = _date_part_range(date_part)
    if args.since:
        since = parse_when(args.since, now)
    else:
        since = named[0] if named else now - timedelta(hours=24)
    if args.until:
        until = parse_when(args.until, now)
    else:
        until = named[1] if named and not args.since else now
    return since, until


def _date_part_range(date_part: str) -> tuple[datetime, datetime] | None:
    """'2026' / '2026/11' / '2026/11/21' (the part of a URL below the region) -> its first and last moment."""
    fields = [f for f in date_part.split("/") if f]
    try:
        numbers = [int(f) for f in fields[:3]]
        if not numbers:
            return None
        start = datetime(numbers[0], *(numbers[1:] + [1, 1])[:2], tzinfo=timezone.utc)
    except ValueError:
        return None
    if len(numbers) == 1:
        end = start.replace(year=start.year + 1)
    elif len(numbers) == 2:
        end = (start + timedelta(days=32)).replace(day=1)
    else:
        end = start + timedelta(days=1)
    return start, end - timedelta(microseconds=1)


def _classify_s3(url: str, args: argparse.Namespace, run: "Run") -> None:
    """List only the day folders in the window, download S3_DOWNLOADS at a time, classify in order.

    Files are classified as they arrive, in listing order (account, region, day, file name);
    an object that cannot be read is named on stderr and the rest go on.
    """
    from .s3logs import TrailBucket, split_s3_url
    from .documents import LOG_SUFFIXES

    try:
        bucket, prefix = split_s3_url(url)
        trail = TrailBucket(bucket, prefix)
        if prefix.endswith(LOG_SUFFIXES):  # one object, e.g. an Athena query's results CSV
            for lines, tally in _classified(trail.fetch([prefix], workers=1, in_flight=1), args.format, 1):
                run.emit(lines, tally)
            return
        since, until = s3_window(args, trail._layout()[2])
        if since > until:
            raise ValueError(f"--since {since:%Y-%m-%dT%H:%MZ} is after --until {until:%Y-%m-%dT%H:%MZ}")
        accounts = _csv_set(args.accounts)
        regions = _csv_set(args.regions)
        found = trail.region_prefixes(accounts, regions)
        if not found:
            raise LookupError("no CloudTrail log folders ([prefix/]AWSLogs/[<org id>/]<account>/CloudTrail/<region>/)"
                              + (" for the accounts/regions asked for" if accounts or regions else ""))
        prefixes = trail.day_prefixes(since, until, region_prefixes=found)
    except Exception as exc:  # noqa: BLE001 - the bucket itself cannot be listed: name it, go on
        run.emit([], Tally(unreadable=[f"{url}: {_describe(exc)}"]), counted=False)
        return
    run.note(f"{url}: {len(prefixes)} day folder(s) from {since:%Y-%m-%d %H:%M} to {until:%Y-%m-%d %H:%M} UTC")
    keys = (key for key, _ in trail.keys(since, until, prefixes=prefixes))
    fetched = trail.fetch(keys, workers=S3_DOWNLOADS, in_flight=S3_IN_FLIGHT)
    try:
        for lines, tally in _classified(fetched, args.format, args.jobs):
            run.emit(lines, tally)
    except Exception as exc:  # noqa: BLE001 - a day folder could not be listed midway
        run.emit([], Tally(unreadable=[f"{url}: {_describe(exc)}"]), counted=False)


def _classified(fetched, fmt: str, jobs: int) -> Iterator[tuple[list[str], Tally]]:
    """Downloaded files -> (findings, tally), in order; in worker processes when jobs > 1."""
    if jobs <= 1:
        for name, data in fetched:
            if isinstance(data, Exception):
                yield [], Tally(unreadable=[f"{name}: {_describe(data)}"])
            else:
                yield process_bytes(name, data, fmt)
        return
    from collections import deque
    from concurrent.futures import Future, ProcessPoolExecutor

    window: deque = deque()
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for name, data in fetched:
            if isinstance(data, Exception):
                done: Future = Future()
                done.set_result(([], Tally(unreadable=[f"{name}: {_describe(data)}"])))
                window.append(done)
            else:
                window.append(pool.submit(process_bytes, name, data, fmt))
            if len(window) >= 2 * jobs:  # bytes handed to workers: a few per worker at most
                yield window.popleft().result()
        while window:
            yield window.popleft().result()


def _csv_set(text: str | None) -> set | None:
    return {v.strip() for v in text.split(",") if v.strip()} if text else None


def _describe(exc: Exception) -> str:
    """A short, one-line reason: the AWS error code and message when there is one."""
    error = getattr(exc, "response", None)
    if isinstance(error, dict) and "Error" in error:
        code, message = error["Error"].get("Code", ""), error["Error"].get("Message", "")
        return f"{code}: {message}".strip(": ") or type(exc).__name__
    return f"{type(exc).__name__}: {exc}"


# ---------------------------------------------------------------------------------------------
# lookup: CloudTrail LookupEvents, regions in parallel, each within its own 2 calls per second
# ---------------------------------------------------------------------------------------------
def process_events(name: str, events: list[tuple[str, str]], fmt: str) -> tuple[list[str], Tally]:
    """One LookupEvents page: each CloudTrailEvent (a record's JSON) through the classifier."""
    lines: list[str] = []
    tally = Tally(files=1)
    for event_id, raw in events:
        more, part = process_bytes(f"{name}:{event_id}", raw.encode("utf-8", "surrogatepass"), fmt)
        part.files = 0
        lines += more
        tally.merge(part)
    return lines, tally


def cmd_lookup(args: argparse.Namespace) -> int:
    import queue
    import threading

    from .lookup import RateLimiter, cloudtrail_client, lookup_pages
    from .s3logs import parse_when

    now = datetime.now(timezone.utc)
    try:
        since = parse_when(args.since, now)
        until = parse_when(args.until, now) if args.until else now
    except ValueError as exc:
        sys.stderr.write(f"auditor lookup: {exc}\n")
        return EXIT_USAGE
    if args.regions:
        regions = sorted(_csv_set(args.regions) or ())
    else:
        import boto3

        regions = [boto3.session.Session().region_name or "us-east-1"]
    run = Run(args, unit="page(s)")
    results: queue.Queue = queue.Queue(maxsize=64)
    DONE = object()

    def region_worker(region: str) -> None:
        try:
            client = cloudtrail_client(region)
            for source, events in lookup_pages(client, since, until, RateLimiter(2.0)):
                results.put(process_events(f"lookup:{region}", events, args.format))
        except Exception as exc:  # noqa: BLE001 - one region failing does not stop the others
            results.put(([], Tally(unreadable=[f"LookupEvents in {region}: {_describe(exc)}"])))
        finally:
            results.put(DONE)

    threads = [threading.Thread(target=region_worker, args=(r,), daemon=True) for r in regions]
    for t in threads:
        t.start()
    running = len(threads)
    while running:
        item = results.get()
        if item is DONE:
            running -= 1
        else:
            run.emit(*item)
    return run.finish()


def _summary(total: Tally, seconds: float, err, quiet: bool, unit: str = "file(s)") -> None:
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
        f"auditor: {total.files} {unit}, {total.records} record(s) in {seconds:.2f} s: {findings} finding(s), "
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
    p.add_argument("--since", help="s3:// paths: read log files delivered since (24h, 7d, 2026-11-20, "
                   "2026-11-20T08:00Z; default: 24h, or the date the URL names)")
    p.add_argument("--until", help="s3:// paths: ... and until (same forms; default: now, or the end of the date the URL names)")
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
