"""The CLI's faster JSON and gzip (auditor/cli/speedups.py: msgspec, zlib-ng) give what the standard
library gives, and the CLI falls back to the standard library when they cannot be imported (or
with AUDITOR_STDLIB=1): the same stdout, byte for byte."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.classify import classify
from auditor.cli import speedups
from auditor.cli.documents import _gunzip, _gunzip_with
from auditor.cli.output import ENCODE_ERRORS, render_jsonl, render_jsonl_utf8
from auditor.facts import Facts
from auditor.records import FailedCall, parse_record

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "functions"), os.environ.get("PYTHONPATH", "")]))

installed = pytest.mark.skipif(speedups.msgspec is None or speedups.gzip_module is zlib,
                               reason="msgspec and zlib-ng are not installed (or AUDITOR_STDLIB is set)")


def _findings():
    for path in sorted(FIXTURES.glob("*/*.json")):
        call = parse_record(json.loads(path.read_text()), path.name)
        if type(call) is FailedCall:
            yield classify(call), call
            side = path.with_suffix(".facts")
            if side.exists():
                yield classify(call, Facts.from_dict(json.loads(side.read_text()))), call


def _same(a, b) -> bool:
    """Equal JSON values, NaN included, and of the same types (an int stays an int).

    Without recursion: from Python 3.12 on, json.loads reads arrays nested deeper than the
    interpreter's recursion limit (3.11 refuses them), so a recursive comparison would fail here."""
    pending = [(a, b)]
    while pending:
        a, b = pending.pop()
        if type(a) is not type(b):
            return False
        if type(a) is dict:
            if list(a) != list(b):
                return False
            pending.extend((a[k], b[k]) for k in a)
        elif type(a) is list:
            if len(a) != len(b):
                return False
            pending.extend(zip(a, b))
        elif type(a) is float and a != a:
            if b == b:
                return False
        elif a != b:
            return False
    return True


def _outcome(load, data):
    try:
        return "value", load(data)
    except RecursionError:
        return "error", RecursionError
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        return "error", type(exc)


@installed
@pytest.mark.parametrize("text", [
    b'{"Records": [{"a": 1}]}', b"123456789012345678901234567890", b"-0", b"[1.5e-7, 1e400, -1e400]", b"NaN",
    b'[Infinity, -Infinity]', b'"\\ud800"', b'"\\udc80x\\ud83d\\ude00"', b'{"a": 1, "a": 2}', b'"\\u0000\\u2028"',
    b"\xef\xbb\xbf{}", '{"é": "日本"}'.encode("utf-16"), '{"é": "日本"}'.encode("utf-32"), b'{"a": "\xff"}', b"",
    b"   ", b'{"a": 1} x', b"[" * 3000 + b"]" * 3000, b"[" * 100 + b"]" * 100, b"1.0", b"1E+2", b"tru",
    '"é 日本 😀"'.encode(), b'{"x": [true, false, null, 0.1, -2, "s"]}',
])
def test_loads_is_json_loads(text):
    got, expected = _outcome(speedups.loads, text), _outcome(json.loads, text)
    assert got[0] == expected[0]
    assert _same(got[1], expected[1]) if got[0] == "value" else got[1] is expected[1]


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                     max_leaves=20)


@installed
@settings(max_examples=500, deadline=None)
@given(_JSON, st.booleans())
def test_loads_reads_any_document_as_json_loads_does(value, ascii_only):
    data = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    got, expected = _outcome(speedups.loads, data), _outcome(json.loads, data)
    assert got[0] == expected[0]
    assert _same(got[1], expected[1]) if got[0] == "value" else got[1] is expected[1]


@installed
@settings(max_examples=500, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.text(),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                    max_leaves=20))
def test_dumps_writes_what_json_dumps_writes_or_refuses(value):
    """Strings (any code point), booleans, null, lists and objects: what a finding holds."""
    written = speedups.dumps(value)
    expected = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if written is None:  # refused: only for what UTF-8 cannot hold
        with pytest.raises(UnicodeEncodeError):
            expected.encode("utf-8")
    else:
        assert written == expected.encode("utf-8")


def test_a_finding_holds_only_what_dumps_writes_as_json_dumps_does():
    """No floats (msgspec spells some differently), no integers, string keys only."""
    def check(value):
        kind = type(value)
        assert kind in (str, bool, type(None), list, dict), kind
        if kind is dict:
            assert all(type(k) is str for k in value)
            for v in value.values():
                check(v)
        elif kind is list:
            for v in value:
                check(v)

    count = 0
    for finding, call in _findings():
        check(finding.to_dict())
        assert render_jsonl_utf8(finding, call) == render_jsonl(finding, call).encode("utf-8", ENCODE_ERRORS["jsonl"])
        count += 1
    assert count > 100


def _gzips():
    body = json.dumps({"Records": [json.loads(p.read_text()) for p in sorted(FIXTURES.glob("*/*.json"))][:40]}).encode()
    one = gzip.compress(body, mtime=0)
    yield "one", one
    yield "multi-member", one + gzip.compress(body[:100], mtime=0) + one
    yield "zero padding", one + b"\0" * 100
    yield "trailing bytes", one + b"garbage"
    yield "truncated", one[: len(one) // 2]
    yield "bad checksum", one[:-8] + bytes([one[-8] ^ 1]) + one[-7:]
    yield "bad length", one[:-1] + bytes([one[-1] ^ 1])
    yield "bad header", b"\x1f\x8b\x09" + one[3:]
    yield "header crc", bytes([*one[:3], one[3] | 2, *one[4:10]]) + b"\0\0" + one[10:]
    yield "second member damaged", one + one[: len(one) // 3]
    yield "empty", b""


@installed
@pytest.mark.parametrize("limit", [1 << 30, 5_000, 20_000])
def test_gunzip_gives_what_zlib_gives(limit):
    for name, data in _gzips():
        expected = _gunzip_with(zlib, data, limit)
        assert _gunzip(data, limit) == expected, name
        fast = _gunzip_with(speedups.gzip_module, data, limit)
        if fast[1] is None:  # read in full, or over the limit: what the CLI keeps from the faster module
            assert fast == expected, name


def _cli(args, env=None, block=""):
    """The CLI's main in a fresh interpreter; ``block`` names modules made unimportable first."""
    code = ("import sys\n"
            f"for name in {block.split()!r}: sys.modules[name] = None\n"
            "from auditor.cli import main, speedups\n"
            "sys.stderr.write(speedups.libraries() + '\\n')\n"
            "sys.exit(main(sys.argv[1:]))\n")
    done = subprocess.run([sys.executable, "-c", code, "classify", *args, "--quiet"], capture_output=True,
                          env=dict(ENV, **(env or {})), cwd=REPO)
    return done.returncode, done.stdout, done.stderr.decode().split("\n", 1)


@pytest.mark.parametrize("fmt", ["jsonl", "table"])
def test_the_cli_falls_back_to_the_standard_library_with_the_same_output(tmp_path, fmt):
    body = json.dumps({"Records": [json.loads(p.read_text()) for p in sorted(FIXTURES.glob("*/*.json"))]}).encode()
    (tmp_path / "a.json.gz").write_bytes(gzip.compress(body))
    (tmp_path / "b.json").write_bytes(body)
    (tmp_path / "c.json.gz").write_bytes(gzip.compress(body)[:-5000])  # truncated: salvaged, named
    args = [str(tmp_path), "--format", fmt, "--jobs", "2"]
    default = _cli(args)
    blocked = _cli(args, block="msgspec zlib_ng zlib_ng.zlib_ng")
    forced = _cli(args, env={"AUDITOR_STDLIB": "1"})
    assert blocked[2][0] == forced[2][0] == "the standard library"
    if speedups.msgspec is not None:
        assert "msgspec" in default[2][0]
    assert default[0] == blocked[0] == forced[0] == 2  # the truncated file
    assert default[1] == blocked[1] == forced[1] and default[1].count(b"\n") > 100
    assert default[2][1] == blocked[2][1] == forced[2][1]  # the same stderr: the truncated input named the same way
