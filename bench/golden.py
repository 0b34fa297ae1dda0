"""Byte-identity check of every finding, for speed work: dump, then compare after each change.

    python -m bench.golden dump  [DIR]   # with the code as it is: writes DIR/*.gz (default bench/.work/golden)
    python -m bench.golden check [DIR] [SET...]   # with the changed code: compares, names the first differences

What is dumped (one line per finding, ``Finding.to_json()``; the CLI's own stdout as bytes):

* ``corpus``: the bench corpus (100,000 records, seed 42): every failure, classified without facts;
* ``fixtures``: every ``tests/fixtures/*/*.json``, without facts and with its ``.facts`` sidecar;
* ``crossed``: every fixture with every other fixture's (errorCode, errorMessage), without facts,
  with its own sidecar's, and with 4 of tests/unit/test_causes.py's FACT_VARIANTS (seeded);
* ``hostile``: every fixture with non-ASCII, control characters, lone surrogates, quotes and
  very long texts in its message, caller ARN, user agent and resource (what JSON rendering
  must escape the same way);
* ``cli-jsonl``, ``cli-table``, ``cli-incidents``: ``auditor classify`` over the bench's log files
  (200,000 records in 100 .json.gz files) with ``--format jsonl``, ``--format table`` and
  ``--incidents --format jsonl``, plus ``--format jsonl`` over tests/fixtures; run with and
  without ``AUDITOR_STDLIB=1`` (the stdlib JSON and gzip path) when checking.

Not a test (it needs the bench corpus, minutes and ~200 MB); the fixture tests keep the findings'
contents under test.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path

from .common import AUDITOR
from .corpus import FIXTURES, ROOT, corpus, log_files

NL = b"\n"
DEFAULT = ROOT / "bench" / ".work" / "golden"
HOSTILE = ("é ü 日本語 \u2028\u2029 😀", "\x00\x01\x1f\x7f\x80\x9f", 'quote " backslash \\ slash /',
           "lone \ud800 surrogate \udfff", "x" * 3000, "\t\n\r\b\f")


def _corpus():
    from auditor.classify import classify
    from auditor.records import FailedCall, parse_record

    for raw in corpus(100_000, 42).lines:
        call = parse_record(json.loads(raw))
        if type(call) is FailedCall:
            yield classify(call).to_json()


def _fixture_rows():
    from auditor.facts import Facts

    for path in sorted(FIXTURES.glob("*/*.json")):
        record = json.loads(path.read_text())
        side = path.with_suffix(".facts")
        facts = Facts.from_dict(json.loads(side.read_text())) if side.exists() else None
        yield path, record, facts


def _fixtures():
    from auditor.classify import classify
    from auditor.records import FailedCall, parse_record

    for path, record, facts in _fixture_rows():
        call = parse_record(record, path.name)
        if type(call) is FailedCall:
            yield classify(call).to_json()
            if facts is not None:
                yield classify(call, facts).to_json()


def _crossed():
    sys.path.insert(0, str(ROOT))
    from tests.unit.test_causes import FACT_VARIANTS

    from auditor.classify import classify
    from auditor.records import FailedCall, parse_record

    rows = list(_fixture_rows())
    texts = sorted({(r.get("errorCode"), r.get("errorMessage")) for _, r, _ in rows if r.get("errorCode")}, key=str)
    rng = random.Random(19)
    for path, record, facts in rows:
        for code, message in texts:
            call = parse_record(dict(record, errorCode=code, errorMessage=message), path.name)
            if type(call) is not FailedCall:
                continue
            for f in [None, facts] + rng.sample(FACT_VARIANTS, 4):
                yield classify(call, f).to_json()


def _hostile():
    from auditor.classify import classify
    from auditor.records import FailedCall, parse_record

    for path, record, facts in _fixture_rows():
        for text in HOSTILE:
            ident = dict(record.get("userIdentity") or {})
            ident["arn"] = f"arn:aws:sts::111122223333:assumed-role/R{text[:40]}/s"
            params = dict(record.get("requestParameters") or {})
            for name in ("secretId", "keyId"):
                if name in params:
                    params[name] = f"{params[name]}{text}"
            variants = (dict(record, errorMessage=f"{record.get('errorMessage') or ''} {text}"),
                        dict(record, userIdentity=ident, userAgent=text, requestParameters=params))
            for variant in variants:
                call = parse_record(variant, path.name)
                if type(call) is FailedCall:
                    yield classify(call).to_json()
                    yield classify(call, facts).to_json()


def _cli(args: list[str], env: dict | None = None) -> bytes:
    done = subprocess.run([AUDITOR, "classify", *args, "--quiet"], capture_output=True, check=False,
                          env=dict(os.environ, **(env or {})))
    return done.stdout + b"\n--- exit " + str(done.returncode).encode() + b"\n" + done.stderr


def _cli_sets():
    logs = str(log_files(200_000, 42))
    return {"cli-jsonl": [logs, "--format", "jsonl"], "cli-table": [logs, "--format", "table"],
            "cli-incidents": [logs, "--incidents", "--format", "jsonl"],
            "cli-fixtures": [str(FIXTURES), "--format", "jsonl", "--jobs", "1"]}


SETS = {"corpus": _corpus, "fixtures": _fixtures, "crossed": _crossed, "hostile": _hostile}


def dump(where: Path) -> None:
    where.mkdir(parents=True, exist_ok=True)
    for name, make in SETS.items():
        lines = list(make())
        (where / f"{name}.gz").write_bytes(gzip.compress("\n".join(lines).encode("utf-8", "surrogatepass"), 1))
        print(f"{name}: {len(lines)} findings", flush=True)
    for name, args in _cli_sets().items():
        out = _cli(args)
        (where / f"{name}.gz").write_bytes(gzip.compress(out, 1))
        print(f"{name}: {len(out)} bytes, sha256 {hashlib.sha256(out).hexdigest()[:16]}", flush=True)


def _first_difference(name: str, old: list, new: list) -> str:
    if len(old) != len(new):
        head = f"{name}: {len(new)} lines, {len(old)} expected"
    else:
        head = f"{name}: differs"
    for i, (a, b) in enumerate(zip(old, new)):
        if a != b:
            at = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            return f"{head}; first at line {i}, character {at}:\n  expected ...{a[max(0, at - 80):at + 120]!r}\n" \
                   f"  got      ...{b[max(0, at - 80):at + 120]!r}"
    return head


def check(where: Path, sets: list[str] | None = None) -> int:
    bad = 0
    for name, make in SETS.items():
        if sets and name not in sets:
            continue
        old = gzip.decompress((where / f"{name}.gz").read_bytes()).decode("utf-8", "surrogatepass").split("\n")
        new = list(make())
        same = old == new
        bad += not same
        print(f"{name}: {len(new)} findings, {'identical' if same else _first_difference(name, old, new)}", flush=True)
    for name, args in _cli_sets().items():
        if sets and name not in sets:
            continue
        old = gzip.decompress((where / f"{name}.gz").read_bytes())
        for label, env in (("default", None), ("AUDITOR_STDLIB=1", {"AUDITOR_STDLIB": "1"})):
            new = _cli(args, env)
            same = old == new
            bad += not same
            verdict = "identical" if same else _first_difference(name, old.split(NL), new.split(NL))
            print(f"{name} ({label}): {len(new)} bytes, {verdict}", flush=True)
    print("ALL IDENTICAL" if not bad else f"{bad} SET(S) DIFFER")
    return 1 if bad else 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("dump", "check"):
        print(__doc__)
        return 2
    rest = argv[1:]
    where = Path(rest.pop(0)) if rest and "/" in rest[0] else DEFAULT
    sets = rest or None
    if argv[0] == "dump":
        dump(where)
        return 0
    return check(where, sets)


if __name__ == "__main__":
    sys.exit(main())
