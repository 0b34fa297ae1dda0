"""The CLI's inputs as a user meets them: a poison record, a crash or a dying worker on one
input, a gzip bomb, /dev/zero, a huge single-line JSON, a truncated .json.gz, a directory that
cannot be listed, a FIFO. Each bad input is named on stderr (one line, no traceback) with exit
status 2, and every other input's findings are still printed.

The CLI runs in a subprocess as users run it. Where a failure has to be provoked (a crash
inside the parser), a small wrapper replaces one function of the auditor package in the child
before calling the CLI's main (worker processes are forked from it, so they carry the fault).
"""

from __future__ import annotations

import gzip
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import zlib
from pathlib import Path

import pytest

from .test_records import DENIED

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "auditor.cli"]
MiB = 1 << 20
DEFAULT_MIB = 128  # the documented default of --max-file-mb

#: Replace every module-level reference to one auditor function, then run the CLI.
#: argv: NAME MODE TRIGGER -- CLI ARGS...; MODE is what the replacement does when TRIGGER
#: (a record's eventName, or a substring of the input's name) matches.
FAULT = r"""
import importlib, os, pkgutil, sys
import auditor
for info in pkgutil.walk_packages(auditor.__path__, "auditor."):
    if info.name != "auditor.handler":
        importlib.import_module(info.name)
name, mode, trigger = sys.argv[1:4]
argv = sys.argv[sys.argv.index("--") + 1:]
import auditor.records as records, auditor.cli.documents as documents
original = getattr(records, name, None) or getattr(documents, name)

def hit(args):
    first = args[0] if args else None
    if type(first) is dict:
        return first.get("eventName") == trigger
    return any(type(a) is str and trigger in a for a in args)

def fault():
    if mode == "raise":
        raise TypeError("unhashable type: 'dict'")
    if mode == "memory":
        raise MemoryError()
    if mode == "exit":
        os._exit(9)

def replaced(*args, **kwargs):
    if hit(args):
        fault()
    return original(*args, **kwargs)

for module in list(sys.modules.values()):
    if getattr(module, "__name__", "").startswith("auditor") and getattr(module, name, None) is original:
        setattr(module, name, replaced)
from auditor.cli import main
sys.exit(main(argv))
"""


def run(*args, stdin=None, timeout=120, preexec_fn=None, cwd=None, user=None):
    return subprocess.run([*CLI, *map(str, args)], stdin=stdin, capture_output=True, timeout=timeout,
                          preexec_fn=preexec_fn, cwd=cwd, user=user)


def run_with_fault(name, mode, trigger, *args):
    return subprocess.run([sys.executable, "-c", FAULT, name, mode, trigger, "--", *map(str, args)],
                          capture_output=True, timeout=120)


def findings(result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.decode().splitlines()]


def clean_stderr(result) -> str:
    err = result.stderr.decode()
    assert "Traceback" not in err, err
    return err


def log(*records, event_id: str = "") -> str:
    return json.dumps({"Records": [dict(r, eventID=f"{event_id}-{i}") for i, r in enumerate(records)]})


@pytest.fixture
def three(tmp_path):
    """Three log files of two failures each, the middle one also holding a record named 'Poison'."""
    (tmp_path / "a.json").write_text(log(DENIED, DENIED, event_id="a"))
    (tmp_path / "b.json").write_text(log(DENIED, {**DENIED, "eventName": "Poison"}, DENIED, event_id="b"))
    (tmp_path / "c.json").write_text(log(DENIED, DENIED, event_id="c"))
    return tmp_path


# ------------------------------------------------------------------------------------------------
# 1. One poison record, one crashing input, one dying worker: nothing else is lost
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_record_whose_processing_raises_is_one_malformed_record_and_nothing_else_is_lost(three, jobs):
    result = run_with_fault("parse_record", "raise", "Poison", "classify", three, "--format", "jsonl", "--jobs", jobs)
    err = clean_stderr(result)
    assert result.returncode == 0, err  # a malformed record is not an unreadable input
    assert sorted(f["event_id"] for f in findings(result)) == ["a-0", "a-1", "b-0", "b-2", "c-0", "c-1"]
    assert "1 malformed" in err
    assert "b.json#1: " in err and "TypeError" in err  # the record's origin and a short reason


@pytest.mark.parametrize("mode, reason", [("raise", "TypeError"), ("memory", "out of memory")])
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_crash_while_processing_one_input_names_it_and_keeps_every_other(three, jobs, mode, reason):
    result = run_with_fault("iter_documents", mode, "b.json", "classify", three, "--format", "jsonl", "--jobs", jobs)
    err = clean_stderr(result)
    assert result.returncode == 2, err
    assert sorted(f["event_id"] for f in findings(result)) == ["a-0", "a-1", "c-0", "c-1"]
    (line,) = [line for line in err.splitlines() if "b.json" in line]
    assert line.startswith("auditor: cannot read ") and reason in line


def test_a_worker_process_that_dies_loses_only_its_own_input(three):
    result = run_with_fault("iter_documents", "exit", "b.json", "classify", three, "--format", "jsonl", "--jobs", "2")
    err = clean_stderr(result)
    assert result.returncode == 2, err
    assert sorted(f["event_id"] for f in findings(result)) == ["a-0", "a-1", "c-0", "c-1"]
    assert any("b.json" in line and "worker process" in line for line in err.splitlines()), err


# ------------------------------------------------------------------------------------------------
# 2. Memory stays bounded whatever the input
# ------------------------------------------------------------------------------------------------
def write_gzip_bomb(path: Path, gib: int = 4) -> None:
    """A ~4 MB gzip member that inflates to `gib` GiB of zeros, written block by block: after a
    full flush, each further MiB of zeros compresses to the same bytes, so they are repeated."""
    zeros = bytes(MiB)
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    first = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
    assert c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH) == block
    tail = c.flush()  # the final empty block and a trailer for 3 MiB...
    crc = 0
    for _ in range(gib * 1024):
        crc = zlib.crc32(zeros, crc)
    with path.open("wb") as f:  # ... replaced by the right trailer for the whole stream
        f.write(first)
        for _ in range(gib * 1024 - 1):
            f.write(block)
        f.write(tail[:-8] + crc.to_bytes(4, "little") + ((gib << 30) & 0xFFFFFFFF).to_bytes(4, "little"))


def write_big_line(path: Path, size: int) -> None:
    """One line of JSON, a valid CloudTrail log file of `size` bytes or a little more."""
    success = json.dumps({k: v for k, v in DENIED.items() if k not in ("errorCode", "errorMessage")}) + ","
    block = (success * (MiB // len(success))).encode()
    with path.open("wb") as f:
        f.write(b'{"Records":[')
        written = 0
        while written < size:
            f.write(block)
            written += len(block)
        f.write(json.dumps(DENIED).encode() + b"]}")


def limit_memory(gib: float):
    def apply():
        limit = int(gib * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return apply


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    write_gzip_bomb(d / "bomb.json.gz")
    write_big_line(d / "big.json", (DEFAULT_MIB + 32) * MiB)
    (d / "good.json").write_text(log(DENIED, event_id="good"))
    return d


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_bomb_dev_zero_and_a_huge_line_are_named_under_a_memory_limit_and_the_good_file_is_read(hostile, jobs):
    assert (hostile / "bomb.json.gz").stat().st_size < 5 * MiB
    result = run("classify", hostile / "bomb.json.gz", "/dev/zero", hostile / "big.json", hostile / "good.json",
                 "--format", "jsonl", "--jobs", jobs, preexec_fn=limit_memory(1.5), timeout=300)
    err = clean_stderr(result)
    assert result.returncode == 2, err
    assert [f["event_id"] for f in findings(result)] == ["good-0"]
    for name in ("bomb.json.gz", "/dev/zero", "big.json"):
        (line,) = [line for line in err.splitlines() if line.startswith("auditor: cannot read") and name in line]
        assert f"larger than the {DEFAULT_MIB} MiB limit" in line and "--max-file-mb" in line, line
    assert "MemoryError" not in err


def test_stdin_is_read_with_the_same_bound(hostile):
    with open("/dev/zero", "rb") as zero:
        result = run("classify", "-", hostile / "good.json", "--format", "jsonl", stdin=zero,
                     preexec_fn=limit_memory(1.5), timeout=300)
    err = clean_stderr(result)
    assert result.returncode == 2, err
    assert "cannot read <stdin>: larger than the 128 MiB limit" in err
    assert [f["event_id"] for f in findings(result)] == ["good-0"]


def test_the_limit_is_a_flag_for_plain_and_decompressed_bytes(tmp_path):
    records = [DENIED] * 2000  # about 3 MiB of JSON
    (tmp_path / "plain.json").write_text(log(*records, event_id="p"))
    (tmp_path / "packed.json.gz").write_bytes(gzip.compress(log(*records, event_id="z").encode()))
    assert (tmp_path / "packed.json.gz").stat().st_size < MiB < (tmp_path / "plain.json").stat().st_size
    small = run("classify", tmp_path, "--format", "jsonl", "--max-file-mb", "1")
    err = clean_stderr(small)
    assert small.returncode == 2 and not small.stdout
    assert f"cannot read {tmp_path / 'plain.json'}: larger than the 1 MiB limit; raise it with --max-file-mb" in err
    assert f"cannot read {tmp_path / 'packed.json.gz'}: larger than the 1 MiB limit once decompressed" in err
    large = run("classify", tmp_path, "--format", "jsonl", "--max-file-mb", "4")
    assert large.returncode == 0, large.stderr
    assert len(findings(large)) == 4000


# ------------------------------------------------------------------------------------------------
# 3. Exit codes that tell the truth: truncated files, unlistable directories, FIFOs
# ------------------------------------------------------------------------------------------------
def test_a_truncated_json_gz_is_named_and_its_complete_records_are_classified(tmp_path):
    varied = [dict(DENIED, requestID=os.urandom(32).hex()) for _ in range(50)]  # compressed, each record costs bytes
    whole = gzip.compress(log(*varied, event_id="t").encode())
    (tmp_path / "cut.json.gz").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "good.json").write_text(log(DENIED, event_id="good"))
    result = run("classify", tmp_path, "--format", "jsonl")
    err = clean_stderr(result)
    assert result.returncode == 2, err
    got = [f["event_id"] for f in findings(result)]
    recovered = [g for g in got if g.startswith("t-")]
    assert got[-1] == "good-0" and recovered == [f"t-{i}" for i in range(len(recovered))]
    assert 5 < len(recovered) < 50  # the first half of the file's records, not one of them lost to the cut
    (line,) = [line for line in err.splitlines() if "cut.json.gz" in line]
    assert line.startswith("auditor: cannot read") and "truncated" in line and f"{len(recovered)} complete record" in line
    assert "0 malformed" in err


def test_a_truncated_plain_log_and_json_lines_keep_every_complete_record(tmp_path):
    text = log(*[DENIED] * 10, event_id="p")
    (tmp_path / "cut.json").write_text(text[: len(text) * 3 // 4])
    result = run("classify", tmp_path / "cut.json", "--format", "jsonl")
    err = clean_stderr(result)
    assert result.returncode == 2, err
    assert [f["event_id"] for f in findings(result)] == [f"p-{i}" for i in range(7)]
    assert "cut.json: the JSON breaks off after 7 complete record(s)" in err


@pytest.mark.parametrize("cut", [0.05, 0.5, 0.95])
def test_a_pretty_printed_record_cut_short_is_one_unreadable_input_not_lines_of_malformed_records(tmp_path, cut):
    text = json.dumps(dict(DENIED, eventID="whole"), indent=2)  # one record as `aws cloudtrail` or an editor saves it
    (tmp_path / "cut.json").write_text(text[: int(len(text) * cut)])
    (tmp_path / "good.json").write_text(log(DENIED, event_id="good"))
    result = run("classify", tmp_path, "--format", "jsonl")
    err = clean_stderr(result)
    assert result.returncode == 2, err
    assert [f["event_id"] for f in findings(result)] == ["good-0"]
    assert "cut.json: the JSON breaks off after 0 complete record(s)" in err
    assert "0 malformed" in err and "1 unreadable" in err


def test_json_lines_with_a_broken_first_line_are_still_read_as_lines(tmp_path):
    broken = json.dumps(dict(DENIED, eventID="broken"))[:-40]  # damaged inside the line, not cut at the file's end
    (tmp_path / "lines.json").write_text("\n".join([broken, json.dumps(dict(DENIED, eventID="next"))]) + "\n")
    result = run("classify", tmp_path / "lines.json", "--format", "jsonl")
    err = clean_stderr(result)
    assert [f["event_id"] for f in findings(result)] == ["next"]
    assert "lines.json:1: line is not JSON" in err and "1 malformed" in err


@pytest.mark.parametrize("records, named", [("null", "null"), ("5", "number"), ('{"eventSource": "kms.amazonaws.com"}', "object"),
                                            ('"x"', "string")])
def test_a_log_whose_records_is_not_an_array_says_so(tmp_path, records, named):
    (tmp_path / "odd.json").write_text('{"Records": %s}' % records)
    result = run("classify", tmp_path / "odd.json", "--format", "jsonl")
    err = clean_stderr(result)
    assert findings(result) == []
    assert f"odd.json: Records is a JSON {named}, not an array" in err and "1 malformed" in err


def test_concatenated_gzip_members_are_all_read(tmp_path):
    members = [gzip.compress(log(DENIED, DENIED, event_id=f"m{n}").encode()) for n in range(3)]
    (tmp_path / "cat.json.gz").write_bytes(b"".join(members))
    result = run("classify", tmp_path / "cat.json.gz", "--format", "jsonl")
    assert result.returncode == 0, result.stderr
    assert [f["event_id"] for f in findings(result)] == ["m0-0", "m0-1", "m1-0", "m1-1", "m2-0", "m2-1"]


def test_a_directory_that_cannot_be_listed_is_named_and_exits_2(three, monkeypatch, capsys):
    """As root, chmod 000 does not stop listing: the walker meets the error it would meet."""
    from auditor import cli

    (three / "locked").mkdir()
    (three / "locked" / "d.json").write_text(log(DENIED, event_id="d"))
    real = os.scandir

    def scandir(path="."):
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    code = cli.main(["classify", str(three), "--format", "jsonl", "--jobs", "1"])
    out, err = capsys.readouterr()
    assert code == 2, err
    assert f"auditor: cannot read {three / 'locked'}: Permission denied" in err
    assert len(out.splitlines()) == 7  # the other files' findings (the Poison record is a failure too)


def unprivileged_python():
    """(uid, an interpreter that uid can run with the package importable, its environment), or a skip."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to an unprivileged user")
    try:
        import pwd

        uid = pwd.getpwnam("nobody").pw_uid
    except KeyError:
        pytest.skip("no 'nobody' user")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO / "functions"), "PYTHONDONTWRITEBYTECODE": "1"}
    for python in dict.fromkeys([sys.executable, shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")]):
        if not python:
            continue
        try:
            subprocess.run([python, "-c", "import sys, auditor.cli; assert sys.version_info >= (3, 11)"], user=uid,
                           cwd="/", env=env, check=True, capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            continue
        return uid, python, env
    pytest.skip("no Python 3.11+ that the unprivileged user can run with this package")


def test_as_another_user_an_unreadable_directory_and_file_are_named():
    """The same without injection: an unprivileged user meets the permission errors."""
    uid, python, env = unprivileged_python()
    top = Path(tempfile.mkdtemp(prefix="auditor-walk-"))
    try:
        os.chmod(top, 0o755)
        (top / "ok.json").write_text(log(DENIED, event_id="ok"))
        (top / "secret").mkdir()
        (top / "secret" / "hidden.json").write_text(log(DENIED, event_id="hidden"))
        (top / "unreadable.json").write_text(log(DENIED, event_id="unreadable"))
        os.chmod(top / "ok.json", 0o644)
        os.chmod(top / "secret", 0o000)
        os.chmod(top / "unreadable.json", 0o000)
        result = subprocess.run([python, "-m", "auditor.cli", "classify", str(top), "--format", "jsonl", "--jobs", "1"],
                                user=uid, cwd="/", env=env, capture_output=True, timeout=120)
        err = clean_stderr(result)
        assert result.returncode == 2, err
        assert [f["event_id"] for f in findings(result)] == ["ok-0"]
        assert f"cannot read {top / 'secret'}: Permission denied" in err
        assert f"cannot read {top / 'unreadable.json'}: Permission denied" in err
    finally:
        os.chmod(top / "secret", 0o755)
        shutil.rmtree(top)


def test_a_fifo_inside_a_directory_is_not_read_but_one_named_on_the_command_line_is(tmp_path):
    os.mkfifo(tmp_path / "pipe.json")  # nobody writes to it: opening it would wait forever
    (tmp_path / "good.json").write_text(log(DENIED, event_id="good"))
    result = run("classify", tmp_path, "--format", "jsonl", timeout=60)
    assert result.returncode == 0, result.stderr
    assert [f["event_id"] for f in findings(result)] == ["good-0"]

    def feed():
        with open(tmp_path / "pipe.json", "w") as pipe:
            pipe.write(log(DENIED, event_id="fifo"))

    writer = threading.Thread(target=feed)
    writer.start()
    result = run("classify", tmp_path / "pipe.json", tmp_path / "good.json", "--format", "jsonl", "--jobs", "2", timeout=60)
    writer.join()
    assert result.returncode == 0, result.stderr
    assert [f["event_id"] for f in findings(result)] == ["fifo-0", "good-0"]


def test_dev_stdin_named_as_a_path_is_read(tmp_path):
    result = run("classify", "/dev/stdin", "--format", "jsonl", stdin=open(_write(tmp_path / "in.json", log(DENIED, event_id="s")), "rb"))
    assert result.returncode == 0, result.stderr
    assert [f["event_id"] for f in findings(result)] == ["s-0"]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_names_with_control_characters_are_escaped_on_stderr(tmp_path):
    bad = tmp_path / "evil\x1b[31mred\nline.json"
    bad.write_bytes(b"\x1f\x8b\x08\x00 not really gzip")
    result = run("classify", bad, "--format", "jsonl")
    err = clean_stderr(result)
    assert result.returncode == 2
    assert "\x1b" not in err
    (line,) = [line for line in err.splitlines() if "cannot read" in line]
    assert "evil\\x1b[31mred\\nline.json" in line
