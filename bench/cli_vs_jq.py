"""cli_vs_jq: ``auditor classify DIR --format jsonl --quiet`` (the installed console script, its
default worker count, with the faster JSON and gzip libraries it uses when installed: msgspec,
zlib-ng) over gzip CloudTrail log files, divided by jq filtering the same files:

    gzip -dc DIR/*.json.gz | jq -c '.Records[] | select(.errorCode)'      (the figure's baseline)

One gzip stream of all files into one jq: jq cannot read gzip, and this is the fastest way to
run jq as people run it (gzip decompresses in its own process, alongside jq; one jq start
instead of one per file). For information, also timed:

* jq in parallel, as many ``gzip -dc | jq`` pipelines as the CLI has workers (xargs -P), since
  the CLI uses every core by default and jq could be made to;
* the CLI with the standard library only (``AUDITOR_STDLIB=1``), in the same rounds: what the
  faster libraries buy (``stdlib_ratio``; the figure is the CLI as installed);
* the floor: a plain Python process that only gunzips and json.loads every file, in one process
  and in as many worker processes as the CLI uses (``python -c``, no auditor import).

Everything writes to /dev/null; rounds interleaved, medians.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from .common import AUDITOR, PY, median, timed

JQ_FILTER = ".Records[] | select(.errorCode)"

FLOOR_SINGLE = """
import gzip, json, sys
for f in sys.argv[1:]:
    with open(f, "rb") as h:
        json.loads(gzip.decompress(h.read()))
"""

FLOOR_POOL = """
import gzip, json, sys
from concurrent.futures import ProcessPoolExecutor

def one(f):
    with open(f, "rb") as h:
        return len(json.loads(gzip.decompress(h.read()))["Records"])

if __name__ == "__main__":
    with ProcessPoolExecutor(int(sys.argv[1])) as pool:
        sum(pool.map(one, sys.argv[2:], chunksize=1))
"""


def cli_jobs() -> int:
    """The CLI's default --jobs, read from its own parser (not assumed)."""
    from auditor.cli import build_parser

    return build_parser().parse_args(["classify", "x"]).jobs


#: The environment that makes the CLI use the standard library's JSON and gzip only.
STDLIB_ENV = {"AUDITOR_STDLIB": "1"}


def _run(cmd, shell: bool = False, env: dict | None = None) -> float:
    environ = dict(os.environ, **env) if env else None
    with open(os.devnull, "wb") as null:
        return timed(lambda: subprocess.run(cmd, shell=shell, stdout=null, check=True, env=environ))


def libraries() -> str:
    """The faster libraries the installed CLI uses (as its speedups module reports them)."""
    done = subprocess.run([PY, "-c", "from auditor.cli.speedups import libraries; print(libraries())"],
                          capture_output=True, text=True)
    return done.stdout.strip() or "?"


def measure(logs, rounds: int) -> dict:
    files = sorted(str(p) for p in logs.glob("*.json.gz"))
    jobs = cli_jobs()
    jq = shutil.which("jq") or ("/usr/bin/jq" if os.path.exists("/usr/bin/jq") else None)
    cli = [AUDITOR, "classify", str(logs), "--format", "jsonl", "--quiet"]
    stream = f"gzip -dc {logs}/*.json.gz | {jq} -c '{JQ_FILTER}'"
    per = -(-len(files) // jobs)
    parallel = (f"printf '%s\\0' {logs}/*.json.gz | xargs -0 -P {jobs} -n {per} "
                f"sh -c 'gzip -dc \"$@\" | {jq} -c \"{JQ_FILTER}\"' _")
    floor1 = [PY, "-c", FLOOR_SINGLE, *files]
    floorn = [PY, "-c", FLOOR_POOL, str(jobs), *files]
    _run(cli), _run(cli, env=STDLIB_ENV), _run(floor1)  # warm the page cache and .pyc files
    t = {k: [] for k in ("cli", "cli_stdlib", "jq", "jq_parallel", "floor_single", "floor_jobs")}
    ratios, stdlib_ratios = [], []
    for i in range(rounds):
        # alternate which CLI runs first: neither always follows jq (or the other) on a warmer machine
        first, second = (("cli", None), ("cli_stdlib", STDLIB_ENV)) if i % 2 == 0 else (
            ("cli_stdlib", STDLIB_ENV), ("cli", None))
        for key, env in (first, second):
            t[key].append(_run(cli, env=env))
        if jq:
            j = _run(stream, shell=True)
            t["jq"].append(j)
            ratios.append(t["cli"][-1] / j)
            stdlib_ratios.append(t["cli_stdlib"][-1] / j)
            t["jq_parallel"].append(_run(parallel, shell=True))
        t["floor_single"].append(_run(floor1))
        t["floor_jobs"].append(_run(floorn))
    out = {"files": len(files), "bytes_gz": sum(os.path.getsize(f) for f in files), "jobs": jobs, "rounds": rounds,
           "jq": jq, "jq_cmd": stream, "jq_parallel_cmd": parallel, "libraries": libraries()}
    for key, values in t.items():
        if values:
            out[f"{key}_s"] = median(values)
            out[f"{key}_range"] = (min(values), max(values))
    if jq:
        out["ratio"] = median(ratios)
        out["ratios"] = sorted(ratios)
        out["stdlib_ratio"] = median(stdlib_ratios)
        out["stdlib_ratios"] = sorted(stdlib_ratios)
        out["ratio_vs_parallel_jq"] = median(c / j for c, j in zip(t["cli"], t["jq_parallel"]))
    return out


def cli_single_job(logs) -> float:
    """The CLI with --jobs 1 (one round, information: what the worker pool buys)."""
    return _run([AUDITOR, "classify", str(logs), "--format", "jsonl", "--quiet", "--jobs", "1"])


def start_overhead(logs) -> dict:
    """Fixed costs of one CLI run: interpreter + imports, and a run over a single file."""
    one = sorted(logs.glob("*.json.gz"))[0]
    imports = median(_run([PY, "-c", "import auditor.cli"]) for _ in range(5))
    bare = median(_run([PY, "-c", "pass"]) for _ in range(5))
    single = median(_run([AUDITOR, "classify", str(one), "--format", "jsonl", "--quiet"]) for _ in range(3))
    return {"python_s": bare, "import_cli_s": imports, "one_file_s": single}


def breakdown(logs) -> dict:
    """Where one process's time goes, stage by stage over every file (each stage timed alone, as the
    CLI runs it: the faster libraries when installed, the collector kept off the parsed input):
    read, gunzip, JSON parse, parse_record (every record), classify (failures), render (the
    --format jsonl line, encoded), and for the worker pool the pickling of each file's rendered
    bytes back to the parent, and the parent's write."""
    import gc
    import pickle
    import time

    from auditor.classify import classify
    from auditor.cli.documents import DEFAULT_LIMIT, _gunzip, iter_outcomes
    from auditor.cli.sources import LocalFile
    from auditor.cli.speedups import loads
    from auditor.cli.stages import Classify, process
    from auditor.records import FailedCall, parse_record

    files = sorted(logs.glob("*.json.gz"))
    stages = dict.fromkeys(("read", "gunzip", "json parse", "parse_record", "classify", "render", "ipc (pickle)",
                            "write"), 0.0)
    records = findings = out_bytes = 0
    clock = time.perf_counter
    render = Classify("jsonl", "utf-8").render
    with open(os.devnull, "wb") as null:
        for path in files:
            t0 = clock()
            data = path.read_bytes()
            t1 = clock()
            raw, _ = _gunzip(data, DEFAULT_LIMIT)
            t2 = clock()
            gc.disable()
            doc = loads(raw)
            gc.freeze()
            gc.enable()
            t3 = clock()
            calls = [parse_record(r) for r in doc["Records"]]
            t4 = clock()
            found = [(classify(c), c) for c in calls if type(c) is FailedCall]
            t5 = clock()
            lines = [render(f, c) for f, c in found]
            lines.append(b"")
            text = b"\n".join(lines)
            t6 = clock()
            pickle.loads(pickle.dumps((text, None), protocol=pickle.HIGHEST_PROTOCOL))
            t7 = clock()
            null.write(text)
            t8 = clock()
            for k, a, b in zip(stages, (t0, t1, t2, t3, t4, t5, t6, t7), (t1, t2, t3, t4, t5, t6, t7, t8)):
                stages[k] += b - a
            records += len(calls)
            findings += len(found)
            out_bytes += len(text)
            del doc, calls, found, lines
            gc.unfreeze()
        # The CLI's own per-file function end to end (bounded read included), for comparison with the sum of the stages.
        stage = Classify("jsonl")
        started = clock()
        for path in files:
            process(LocalFile(str(path)), stage, DEFAULT_LIMIT)
        whole = clock() - started
        # iter_outcomes alone (gunzip + parse + parse_record, as the CLI runs them): the generator's share.
        started = clock()
        for path in files:
            for _ in iter_outcomes(path.read_bytes(), str(path)):
                pass
        outcomes = clock() - started
    return {"stages": stages, "records": records, "findings": findings, "output_bytes": out_bytes,
            "process_bytes_s": whole, "iter_outcomes_s": outcomes}
