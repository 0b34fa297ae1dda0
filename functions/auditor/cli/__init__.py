"""The command line: the Lambda's classifier over CloudTrail history, no AWS needed.

    auditor classify PATH... [--format table|jsonl] [--jobs N] [--max-file-mb N] [--incidents [--quiet-minutes N]]
    auditor classify s3://bucket/[prefix/] [--since 7d] [--until ...] [--accounts ...] [--regions ...]
    auditor classify athena-results.csv            (an Athena query's results: the ``record`` column)
    auditor lookup [--since 24h] [--until ...] [--regions us-east-1,eu-west-1]
    auditor causes [--format table|jsonl]

Findings go to stdout (with ``--incidents``: the incidents they make, the changes of the same
input attributed, once everything is read); the summary, malformed records, unreadable inputs and progress go to
stderr. Exit status: 0 when every input was read, 2 when one could not be (the others are
still processed), 1 on a usage error.

The package, by what changes together (data flows one way: source -> records -> findings -> output):

    __init__.py      the parser and main (this file); __main__.py for ``python -m auditor.cli``
    commands.py      classify, lookup, causes: wiring only
    windows.py       --since/--until and the dates an s3:// URL names
    sources.py       local paths, stdin and streams, S3 objects, LookupEvents pages -> named inputs
    s3_trail.py      a trail bucket's layout: which prefixes to list, downloads in order
    lookup_events.py CloudTrail LookupEvents, paginated and rate limited
    stages.py        one input's records -> parsed outcomes -> the stage (Classify, Incidents) -> a Part
    workers.py       that, for many inputs, in worker processes, in order
    output.py        table / JSON Lines on stdout; problems, progress and the summary on stderr
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Iterable

from ..aws import ACCOUNT_ID
from ..config import DEFAULT_QUIET_SECONDS
from .documents import DEFAULT_LIMIT, MiB
from .output import safe
from .windows import UsageError

__all__ = ["EXIT_OK", "EXIT_UNREADABLE", "EXIT_USAGE", "build_parser", "main"]

EXIT_OK, EXIT_USAGE, EXIT_UNREADABLE = 0, 1, 2
MAX_JOBS = 256
#: The largest --max-file-mb accepted (1 TiB): beyond any file this reads, within every buffer's range.
MAX_FILE_MB = 1 << 20
#: --quiet-minutes: the function's default INCIDENT_QUIET_SECONDS, in minutes.
DEFAULT_QUIET_MINUTES = DEFAULT_QUIET_SECONDS // 60
MAX_QUIET_MINUTES = 90 * 24 * 60


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors as usage errors (status 1: status 2 means an unreadable input)."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {safe(message)}\n")


def _whole(low: int, high: int, unit: str = ""):
    """An argparse type: a whole number from ``low`` to ``high``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number{' of ' + unit if unit else ''}: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}{' ' + unit if unit else ''}, not {value}")
        return value
    return parse


_jobs = _whole(1, MAX_JOBS)
_minutes = _whole(1, MAX_QUIET_MINUTES, "minutes")


def _megabytes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and 0 < value <= MAX_FILE_MB):
        raise argparse.ArgumentTypeError(f"must be a positive number of MiB up to {MAX_FILE_MB}, not {text!r}")
    return value


def _incident_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--incidents", action="store_true",
                   help="group the failures into incidents (one per root cause, the change that started it found "
                   "in the same input) and print those instead of one line per failure")
    p.add_argument("--quiet-minutes", type=_minutes, default=DEFAULT_QUIET_MINUTES, metavar="N",
                   help="with --incidents: an incident ends after N minutes without a failure of its root cause "
                   "(default %(default)s, the function's default)")


def _accounts(text: str) -> set[str]:
    values = {v.strip() for v in text.split(",") if v.strip()}
    bad = sorted(v for v in values if not ACCOUNT_ID.match(v))
    if not values or bad:
        raise argparse.ArgumentTypeError(f"expected 12-digit account ids separated by commas, got {text!r}")
    return values


def _regions(text: str) -> set[str]:
    values = {v.strip() for v in text.split(",") if v.strip()}
    if not values or not all(v.isascii() and v.replace("-", "").isalnum() and v == v.lower() for v in values):
        raise argparse.ArgumentTypeError(f"expected region names separated by commas (us-east-1,eu-west-1), got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="auditor", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("classify", help="classify failed calls in CloudTrail files, directories or stdin (-)")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--format", choices=("table", "jsonl"), default="table")
    p.add_argument("--jobs", type=_jobs, default=min(os.cpu_count() or 1, 8),
                   help="worker processes for many files (default: CPU count, at most 8)")
    p.add_argument("--max-file-mb", type=_megabytes, default=DEFAULT_LIMIT / MiB, metavar="N",
                   help="read at most N MiB of one input, compressed and once decompressed (default %(default)g); "
                   "a larger one is named as unreadable")
    p.add_argument("--quiet", action="store_true", help="no summary or progress on stderr")
    p.add_argument("--since", help="s3:// paths: read log files delivered since (24h, 7d, 2026-11-20, "
                   "2026-11-20T08:00Z; default: 24h, or the date the URL names)")
    p.add_argument("--until", help="s3:// paths: ... and until (same forms; default: now, or the end of the date the URL names)")
    p.add_argument("--accounts", type=_accounts, help="s3:// paths: comma-separated account ids to read (default all)")
    p.add_argument("--regions", type=_regions, help="s3:// paths: comma-separated regions to read (default all)")
    _incident_options(p)
    p.set_defaults(run="classify")
    lk = sub.add_parser("lookup", help="classify recent Secrets Manager and KMS events from CloudTrail LookupEvents")
    lk.add_argument("--since", default="24h", help="how far back (24h, 7d, an ISO time; LookupEvents keeps 90 days)")
    lk.add_argument("--until", help="end of the window (default now)")
    lk.add_argument("--regions", type=_regions, help="comma-separated regions (default: the configured region)")
    lk.add_argument("--format", choices=("table", "jsonl"), default="table")
    lk.add_argument("--max-file-mb", type=_megabytes, default=DEFAULT_LIMIT / MiB, metavar="N",
                    help="read at most N MiB of events from one LookupEvents page (default %(default)g)")
    lk.add_argument("--quiet", action="store_true", help="no summary or progress on stderr")
    _incident_options(lk)
    lk.set_defaults(run="lookup")
    c = sub.add_parser("causes", help="list the cause catalog")
    c.add_argument("--format", choices=("table", "jsonl"), default="table")
    c.set_defaults(run="causes")
    return parser


def main(argv: Iterable[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(list(argv) if argv is not None else None)
    except SystemExit as stop:  # --help (0) or a usage error (1)
        return stop.code if isinstance(stop.code, int) else EXIT_USAGE
    if hasattr(args, "max_file_mb"):
        args.max_file_bytes = max(1, round(args.max_file_mb * MiB))
    _tolerant(sys.stdout)
    from . import commands

    run = {"classify": commands.cmd_classify, "lookup": commands.cmd_lookup, "causes": commands.cmd_causes}[args.run]
    try:
        return run(args)
    except UsageError as exc:
        sys.stderr.write(f"auditor {args.command}: {safe(exc)}\n")
        return EXIT_USAGE
    except BrokenPipeError:  # `auditor classify ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - never a traceback: one line, and not "every input was read"
        from .sources import describe

        sys.stderr.write(f"auditor {args.command}: stopped by an internal error ({safe(describe(exc))})\n")
        return EXIT_UNREADABLE


def _tolerant(stream) -> None:
    """A terminal that cannot encode a character shows an escape rather than failing the run."""
    encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "").replace("_", "")
    if encoding not in ("utf8", "") and getattr(stream, "errors", "") == "strict" and hasattr(stream, "reconfigure"):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (ValueError, OSError):
            pass
