"""Byte-identity check of every finding, for speed work: dump, then compare after each change.

    python -m bench.golden dump  [DIR] [SET...]   # with the code as it is: writes DIR/*.gz (default bench/.work/golden)
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
  ``--incidents --format jsonl``, plus ``--format jsonl`` over tests/fixtures; ``cli-inputs``:
  inputs whose JSON or gzip a faster library could read differently (lone surrogates, huge
  integers, NaN, a byte order mark, UTF-16, damaged and multi-member gzip, ...). Each is run with
  and without ``AUDITOR_STDLIB=1`` (the standard library's JSON and gzip) when checking; the
  findings of the first four sets are also rendered as the CLI's UTF-8 JSON Lines and compared.

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
            yield classify(call)


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
            yield classify(call)
            if facts is not None:
                yield classify(call, facts)


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
                yield classify(call, f)


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
                    yield classify(call)
                    yield classify(call, facts)


def _cli(args: list[str], env: dict | None = None) -> bytes:
    done = subprocess.run([AUDITOR, "classify", *args, "--quiet"], capture_output=True, check=False,
                          env=dict(os.environ, **(env or {})))
    return done.stdout + b"\n--- exit " + str(done.returncode).encode() + b"\n" + done.stderr


def _hostile_inputs(where: Path) -> Path:
    """Inputs whose JSON or gzip the faster libraries could read differently: lone surrogates, huge
    integers, NaN, duplicate keys, a byte order mark, UTF-16, non-ASCII, JSON Lines, concatenated,
    truncated and damaged gzip, trailing bytes, multi-member gzip (written once, deterministic)."""
    where.mkdir(parents=True, exist_ok=True)
    base = [json.loads(p.read_text()) for p in sorted(FIXTURES.glob("*/*.json"))][:60]
    text = json.dumps({"Records": base})
    odd = []
    for i, rec in enumerate(base[:20]):
        raw = json.dumps(rec)
        odd.append(raw.replace('"eventVersion": "', '"eventVersion": "\\ud800', 1) if i % 4 == 0 else
                   raw.replace('"awsRegion": ', '"bigNumber": 123456789012345678901234567890, "awsRegion": ', 1) if i % 4 == 1 else
                   raw.replace('"awsRegion": ', '"awsRegion": "x", "awsRegion": ', 1) if i % 4 == 2 else
                   raw.replace('"eventVersion": ', '"f": 1e400, "n": -0.0, "eventVersion": ', 1))
        if i % 5 == 0:
            odd[-1] = odd[-1].replace('"errorMessage": "', '"errorMessage": "\\udc80 é 日本 \\u2028 ', 1)
    files = {
        "plain.json": text.encode(),
        "odd.json": ('{"Records": [' + ", ".join(odd) + "]}").encode(),
        "nan.json": ('{"Records": [' + ", ".join(odd[:3]) + ', {"x": NaN}]}').encode(),
        "lines.jsonl": "\n".join(odd + [json.dumps(r) for r in base[:10]] + ["{broken"]).encode(),
        "bom.json": b"\xef\xbb\xbf" + text.encode(),
        "utf16.json": text.encode("utf-16"),
        "nonascii.json": json.dumps({"Records": base[:10]}, ensure_ascii=False).replace("us-east-1", "us-éast-1").encode(),
        "multi.json.gz": gzip.compress(text.encode(), mtime=0) + gzip.compress(text.encode(), mtime=0),
        "padded.json.gz": gzip.compress(text.encode(), mtime=0) + b"\0" * 64,
        "trailing.json.gz": gzip.compress(text.encode(), mtime=0) + b"garbage",
        "truncated.json.gz": gzip.compress(text.encode(), mtime=0)[:-4000],
        "badcrc.json.gz": (lambda z: z[:-8] + bytes([z[-8] ^ 1]) + z[-7:])(gzip.compress(text.encode(), mtime=0)),
        "concatenated.json": (text + "\n" + text[: len(text) // 2]).encode(),
    }
    for name, data in files.items():
        (where / name).write_bytes(data)
    return where


def _cli_sets():
    logs = str(log_files(200_000, 42))
    inputs = str(_hostile_inputs(DEFAULT.parent / "golden-inputs"))
    return {"cli-jsonl": [logs, "--format", "jsonl"], "cli-table": [logs, "--format", "table"],
            "cli-incidents": [logs, "--incidents", "--format", "jsonl"],
            "cli-fixtures": [str(FIXTURES), "--format", "jsonl", "--jobs", "1"],
            "cli-inputs": [inputs, "--format", "jsonl", "--jobs", "1"],
            "cli-inputs-table": [inputs, "--format", "table", "--jobs", "2"]}


SETS = {"corpus": _corpus, "fixtures": _fixtures, "crossed": _crossed, "hostile": _hostile}


def dump(where: Path, sets: list[str] | None = None) -> None:
    where.mkdir(parents=True, exist_ok=True)
    for name, make in SETS.items():
        if sets and name not in sets:
            continue
        lines = [f.to_json() for f in make()]
        (where / f"{name}.gz").write_bytes(gzip.compress("\n".join(lines).encode("utf-8", "surrogatepass"), 1))
        print(f"{name}: {len(lines)} findings", flush=True)
    for name, args in _cli_sets().items():
        if sets and name not in sets:
            continue
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
        findings = list(make())
        new = [f.to_json() for f in findings]
        same = old == new
        bad += not same
        print(f"{name}: {len(new)} findings, {'identical' if same else _first_difference(name, old, new)}", flush=True)
        # The CLI's JSON Lines on a UTF-8 stdout, rendered by msgspec when installed: the same bytes.
        from auditor.cli.output import ENCODE_ERRORS, render_jsonl_utf8
        from auditor.cli.speedups import libraries

        old = [line.encode("utf-8", ENCODE_ERRORS["jsonl"]) for line in old]
        new = [render_jsonl_utf8(f, None) for f in findings]
        same = old == new
        bad += not same
        print(f"{name} rendered for the CLI ({libraries()}): {'identical' if same else _first_difference(name, old, new)}",
              flush=True)
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
        dump(where, sets)
        return 0
    return check(where, sets)


if __name__ == "__main__":
    sys.exit(main())
