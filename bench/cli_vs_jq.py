"""cli_vs_jq: ``auditor classify DIR --format jsonl --quiet`` (the installed console script, its
default worker count) over gzip CloudTrail log files, divided by jq filtering the same files:

    gzip -dc DIR/*.json.gz | jq -c '.Records[] | select(.errorCode)'      (the figure's baseline)

One gzip stream of all files into one jq: jq cannot read gzip, and this is the fastest way to
run jq as people run it (gzip decompresses in its own process, alongside jq; one jq start
instead of one per file). For information, also timed:

* jq in parallel, as many ``gzip -dc | jq`` pipelines as the CLI has workers (xargs -P), since
  the CLI uses every core by default and jq could be made to;
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


def _run(cmd, shell: bool = False) -> float:
    with open(os.devnull, "wb") as null:
        return timed(lambda: subprocess.run(cmd, shell=shell, stdout=null, check=True))


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
    _run(cli), _run(floor1)  # warm the page cache and .pyc files
    t = {k: [] for k in ("cli", "jq", "jq_parallel", "floor_single", "floor_jobs")}
    ratios = []
    for i in range(rounds):
        c = _run(cli)
        t["cli"].append(c)
        if jq:
            j = _run(stream, shell=True)
            t["jq"].append(j)
            ratios.append(c / j)
            t["jq_parallel"].append(_run(parallel, shell=True))
        t["floor_single"].append(_run(floor1))
        t["floor_jobs"].append(_run(floorn))
    out = {"files": len(files), "bytes_gz": sum(os.path.getsize(f) for f in files), "jobs": jobs, "rounds": rounds,
           "jq": jq, "jq_cmd": stream, "jq_parallel_cmd": parallel}
    for key, values in t.items():
        if values:
            out[f"{key}_s"] = median(values)
    if jq:
        out["ratio"] = median(ratios)
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
    """Where one process's time goes, stage by stage over every file (each stage timed alone):
    read, gunzip, json.loads, parse_record (every record), classify (failures), render
    (Finding.to_json, the --format jsonl line), and for the worker pool the pickling of each
    file's rendered lines back to the parent, and the parent's write."""
    import gzip
    import json
    import pickle
    import time

    from auditor.classify import classify
    from auditor.cli.sources import LocalFile
    from auditor.cli.stages import Classify, process
    from auditor.cli.documents import DEFAULT_LIMIT, iter_outcomes
    from auditor.records import FailedCall, parse_record

    files = sorted(logs.glob("*.json.gz"))
    stages = dict.fromkeys(("read", "gunzip", "json.loads", "parse_record", "classify", "render", "ipc (pickle)",
                            "write"), 0.0)
    records = findings = out_bytes = 0
    clock = time.perf_counter
    with open(os.devnull, "w") as null:
        for path in files:
            t0 = clock()
            data = path.read_bytes()
            t1 = clock()
            raw = gzip.decompress(data)
            t2 = clock()
            doc = json.loads(raw)
            t3 = clock()
            calls = [parse_record(r) for r in doc["Records"]]
            t4 = clock()
            found = [classify(c) for c in calls if type(c) is FailedCall]
            t5 = clock()
            lines = [f.to_json() for f in found]
            t6 = clock()
            pickle.loads(pickle.dumps((lines, None), protocol=pickle.HIGHEST_PROTOCOL))
            t7 = clock()
            null.write("\n".join(lines))
            null.write("\n")
            t8 = clock()
            for k, a, b in zip(stages, (t0, t1, t2, t3, t4, t5, t6, t7), (t1, t2, t3, t4, t5, t6, t7, t8)):
                stages[k] += b - a
            records += len(calls)
            findings += len(found)
            out_bytes += sum(map(len, lines)) + len(lines)
        # The CLI's own per-file function end to end (bounded read included), for comparison with the sum of the stages.
        stage = Classify("jsonl")
        started = clock()
        for path in files:
            process(LocalFile(str(path)), stage, DEFAULT_LIMIT)
        whole = clock() - started
        # iter_outcomes alone (gunzip + loads + parse, as the CLI runs them): the generator's share.
        started = clock()
        for path in files:
            for _ in iter_outcomes(path.read_bytes(), str(path)):
                pass
        outcomes = clock() - started
    return {"stages": stages, "records": records, "findings": findings, "output_bytes": out_bytes,
            "process_bytes_s": whole, "iter_outcomes_s": outcomes}
