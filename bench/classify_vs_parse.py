"""classify_vs_parse: json.loads + parse_record + classify (failures) over N records, divided by
json.loads alone over the same bytes; rounds interleaved, median of the per-round ratios.

``classify`` decides the cause; the finding's explanation (the winner's evidence, remediation,
policy statement, fingerprint) is written when the finding is first read. Every output reads
it (the function's log line and alert, the CLI's lines), so the same rounds also time the loop
with every finding's explanation written (``Finding.settle``), reported for information as
``explained_ratio``: what a user who reads every finding pays per record.

Both loops run in this process on the same list of bytes; one untimed pass of each first (the
classifier's memo tables warm up as in any long-running process).
"""

from __future__ import annotations

import json

from .common import median, timed
from .corpus import corpus


def measure(n: int, rounds: int, seed: int) -> dict:
    from auditor.classify import classify
    from auditor.records import FailedCall, parse_record

    lines = corpus(n, seed).lines
    loads = json.loads

    def baseline():
        for raw in lines:
            loads(raw)

    def auditor():
        for raw in lines:
            call = parse_record(loads(raw))
            if type(call) is FailedCall:
                classify(call)

    def explained():
        for raw in lines:
            call = parse_record(loads(raw))
            if type(call) is FailedCall:
                classify(call).settle()

    baseline()
    auditor()
    explained()
    base, full, ratios, read = [], [], [], []
    for i in range(rounds):
        if i % 2:  # alternate the order: neither side always runs on a warmer cache
            f, b = timed(auditor), timed(baseline)
            e = timed(explained)
        else:
            e = timed(explained)
            b, f = timed(baseline), timed(auditor)
        base.append(b)
        full.append(f)
        ratios.append(f / b)
        read.append(e / b)
    failures = sum(1 for raw in lines if type(parse_record(loads(raw))) is FailedCall)
    return {"n": n, "bytes": sum(map(len, lines)), "failures": failures, "rounds": rounds,
            "json_loads_s": median(base), "parse_classify_s": median(full), "ratio": median(ratios),
            "explained_ratio": median(read)}


def profile(n: int, seed: int, top: int = 20) -> str:
    """cProfile of the parse+classify loop (minus nothing: json.loads is in it too), top by tottime."""
    import cProfile
    import io
    import pstats

    from auditor.classify import classify
    from auditor.records import FailedCall, parse_record

    lines = corpus(n, seed).lines
    loads = json.loads

    def auditor():
        for raw in lines:
            call = parse_record(loads(raw))
            if type(call) is FailedCall:
                classify(call)

    auditor()
    prof = cProfile.Profile()
    prof.runcall(auditor)
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()
