"""The commands, wiring only: which source, which stage, which output.

    classify PATH...      sources.local_inputs  -> stages.Classify -> output.Run
    classify s3://...     s3_trail (the window's day folders) -> sources.s3_objects -> the same
    lookup                lookup_events pages, regions in parallel -> sources.page -> the same
    ... --incidents       the same sources -> stages.Incidents -> triage.Triage -> output.Run, at the end
    causes                the catalog

Every argument is checked before anything is read (a bad one is a ``UsageError``: exit 1).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Optional

from .documents import LOG_SUFFIXES
from . import lookup_events, s3_trail, sources, windows
from .output import ENCODE_ERRORS, INCIDENT_HEADER, RENDER_INCIDENT, TABLE_HEADER, Part, Run
from .stages import Classify, Incidents, process
from .workers import in_order

__all__ = ["S3_DOWNLOADS", "S3_IN_FLIGHT", "cmd_causes", "cmd_classify", "cmd_lookup"]

EXIT_OK, EXIT_USAGE, EXIT_UNREADABLE = 0, 1, 2
S3_DOWNLOADS = 8  # concurrent GETs
S3_IN_FLIGHT = 16  # compressed files held in memory at once (downloading or waiting to be classified)


def _failure(stage, item, reason: str) -> Part:
    part = stage.part()
    part.tally.unreadable.append((item.name, reason))
    return part


def _weight(item) -> int:
    """Bytes an input carries to a worker process (a path carries none)."""
    return len(item.data) if type(item) is sources.Loaded else 0


def _encoding(stream) -> str:
    return getattr(stream, "encoding", None) or "utf-8"


def _status(run: Run, triage=None) -> int:
    if triage is not None:
        _incidents(run, triage)
    run.finish()
    return EXIT_UNREADABLE if run.unreadable else EXIT_OK


def _stage_and_run(args, unit: str = "file(s)", expected: int = 0):
    """(the stage, the run, the triage or None): findings as they come, or incidents at the end."""
    if not args.incidents:
        stage = Classify(args.format, _encoding(sys.stdout))
        return stage, Run(args.format, args.quiet, sys.stdout, sys.stderr, expected=expected, unit=unit), None
    from .triage import Triage

    triage = Triage(args.quiet_minutes * 60)

    def collect(units: list) -> None:
        for item in units:
            triage.take(item)

    run = Run(args.format, args.quiet, sys.stdout, sys.stderr, expected=expected, unit=unit,
              header=INCIDENT_HEADER if args.format == "table" else TABLE_HEADER, collect=collect)
    return Incidents(), run, triage


def _incidents(run: Run, triage) -> None:
    """The incidents of everything read, oldest first, and a line of totals on stderr."""
    render, errors = RENDER_INCIDENT[run.fmt], ENCODE_ERRORS[run.fmt]
    found = triage.incidents()
    for incident in found:
        run.write((render(incident) + "\n").encode(run.encoding, errors))
    still = sum(1 for i in found if i.status == "open")
    changes = sum(1 for i in found if i.attribution.change is not None)
    run.note(f"{len(found)} incident(s) from {triage.failures} failed call(s), {still} still failing at the input's last "
             f"failure, {changes} with the change that started it found among {triage.changes} change(s) read",
             always=not run.quiet)


# ---------------------------------------------------------------------------------------------
# classify
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class S3Plan:
    """One s3:// URL, checked: its bucket and prefix, and the window of days to read."""

    url: str
    bucket: str
    prefix: str
    single: bool = False  # one object (an Athena results CSV, one log file)
    since: Optional[datetime] = None
    until: Optional[datetime] = None


def plan_s3(url: str, args) -> S3Plan:
    try:
        bucket, prefix = s3_trail.split_s3_url(url)
        if prefix.endswith(LOG_SUFFIXES):
            return S3Plan(url, bucket, prefix, single=True)
        since, until = windows.s3_window(args, s3_trail.layout(prefix)[2])
    except ValueError as exc:
        raise windows.UsageError(f"{url}: {exc}") from None
    return S3Plan(url, bucket, prefix, since=since, until=until)


def cmd_classify(args) -> int:
    windows.check_order(args.since, args.until)
    plans = [plan_s3(p, args) for p in args.paths if p.startswith("s3://")]
    limit = args.max_file_bytes
    items = sources.local_inputs([p for p in args.paths if not p.startswith("s3://")])
    stage, run, triage = _stage_and_run(args, expected=len(items))
    work = partial(process, stage=stage, limit=limit)
    error = partial(_failure, stage)
    files = sum(1 for i in items if type(i) is sources.LocalFile)
    jobs = min(args.jobs, files) if files > 1 else 1
    for part in in_order((sources.prepare(i, limit) for i in items), work, jobs, error, _weight, limit):
        run.emit(part)
    for plan in plans:
        _classify_s3(plan, args, run, work, error)
    return _status(run, triage)


def _classify_s3(plan: S3Plan, args, run: Run, work, error) -> None:
    """List only the day folders in the window, download S3_DOWNLOADS at a time, classify in order.

    Files are classified as they arrive, in listing order (account, region, day, file name);
    an object that cannot be read, or a day folder that cannot be listed, is named on stderr
    and the rest go on.
    """
    limit = args.max_file_bytes
    try:
        trail = s3_trail.TrailBucket(plan.bucket, plan.prefix)
        if plan.single:
            for part in in_order(sources.s3_objects(trail, [plan.prefix], limit, 1, 1), work, 1, error):
                run.emit(part)
            return
        accounts, regions = args.accounts, args.regions
        found = trail.region_prefixes(accounts, regions)
        if not found:
            raise LookupError("no CloudTrail log folders ([prefix/]AWSLogs/[<org id>/]<account>/CloudTrail/<region>/)"
                              + (" for the accounts/regions asked for" if accounts or regions else ""))
        prefixes = trail.day_prefixes(plan.since, plan.until, region_prefixes=found)
    except Exception as exc:  # noqa: BLE001 - the bucket itself cannot be listed: name it, go on
        run.failed(plan.url, sources.describe(exc))
        return
    window = f"from {plan.since:%Y-%m-%d %H:%M} to {plan.until:%Y-%m-%d %H:%M} UTC"
    run.note(f"{plan.url}: {len(prefixes)} day folder(s) {window}")
    seen = {"files": 0, "unlisted": 0}

    def unlisted(prefix: str, exc: Exception) -> None:
        seen["unlisted"] += 1
        run.failed(f"s3://{plan.bucket}/{prefix}", sources.describe(exc))

    def keys():
        for key, size in trail.keys(plan.since, plan.until, prefixes=prefixes, on_error=unlisted):
            seen["files"] += 1
            yield key, size

    objects = sources.s3_objects(trail, keys(), limit, S3_DOWNLOADS, S3_IN_FLIGHT)
    try:
        for part in in_order(objects, work, args.jobs, error, _weight, limit):
            run.emit(part)
    except Exception as exc:  # noqa: BLE001 - whatever else stops the walk: named, the run goes on
        run.failed(plan.url, sources.describe(exc))
        return
    if not seen["files"] and not seen["unlisted"]:
        run.note(f"{plan.url}: no log files in the {len(prefixes)} day folder(s) {window}", always=True)


# ---------------------------------------------------------------------------------------------
# lookup: CloudTrail LookupEvents, regions in parallel, each within its own 2 calls per second
# ---------------------------------------------------------------------------------------------
def cmd_lookup(args) -> int:
    import queue
    import threading

    since, until = windows.lookup_window(args.since, args.until)
    if args.regions:
        regions = sorted(args.regions)
    else:
        import boto3

        regions = [boto3.session.Session().region_name or "us-east-1"]
    limit = args.max_file_bytes
    stage, run, triage = _stage_and_run(args, unit="page(s)")
    results: queue.Queue = queue.Queue(maxsize=64)
    done = object()

    def region_worker(region: str) -> None:
        pages: dict[str, int] = {}
        try:
            client = lookup_events.cloudtrail_client(region)
            for source, events in lookup_events.lookup_pages(client, since, until, lookup_events.RateLimiter(2.0)):
                service = source.partition(".")[0]
                pages[service] = pages.get(service, 0) + 1
                item = sources.page(f"LookupEvents in {region} ({service}, page {pages[service]})", f"lookup:{region}",
                                    events, limit)
                results.put(process(item, stage, limit))
        except Exception as exc:  # noqa: BLE001 - one region failing does not stop the others
            results.put(_failure(stage, sources.Failed(f"LookupEvents in {region}", ""), sources.describe(exc)))
        finally:
            results.put(done)

    threads = [threading.Thread(target=region_worker, args=(r,), daemon=True) for r in regions]
    for t in threads:
        t.start()
    running = len(threads)
    while running:
        item = results.get()
        if item is done:
            running -= 1
        else:
            run.emit(item)
    return _status(run, triage)


# ---------------------------------------------------------------------------------------------
# causes
# ---------------------------------------------------------------------------------------------
def cmd_causes(args) -> int:
    import json

    from ..causes import CATALOG

    for cause in CATALOG:
        if args.format == "jsonl":
            row = {"id": cause.id, "title": cause.title, "severity": cause.severity, "topic": cause.topic,
                   "doc_url": cause.doc_url, "precedence": cause.precedence}
            sys.stdout.write(json.dumps(row) + "\n")
        else:
            sys.stdout.write(f"{cause.id:<38} {cause.severity:<9} {cause.title}\n")
    return EXIT_OK
