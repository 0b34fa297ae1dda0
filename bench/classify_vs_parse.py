"""classify_vs_parse: json.loads + parse_record + classify (failures) over N records, divided by
json.loads alone over the same bytes; rounds interleaved, median of the per-round ratios.

``classify`` returns the complete finding (cause, evidence, confidence, remediation, policy
statement, fingerprint): what every output reads (the function's log line and alert, the CLI's
lines). Rendering it (``to_json``) is not in the figure: it is timed for information.

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

    def rendered():
        for raw in lines:
            call = parse_record(loads(raw))
            if type(call) is FailedCall:
                classify(call).to_json()

    baseline()
    auditor()
    rendered()
    base, full, ratios, render = [], [], [], []
    for i in range(rounds):
        if i % 2:  # alternate the order: neither side always runs on a warmer cache
            f, b = timed(auditor), timed(baseline)
            r = timed(rendered)
        else:
            r = timed(rendered)
            b, f = timed(baseline), timed(auditor)
        base.append(b)
        full.append(f)
        ratios.append(f / b)
        render.append(r / b)
    failures = sum(1 for raw in lines if type(parse_record(loads(raw))) is FailedCall)
    return {"n": n, "bytes": sum(map(len, lines)), "failures": failures, "rounds": rounds,
            "json_loads_s": median(base), "parse_classify_s": median(full), "ratio": median(ratios),
            "ratios": sorted(ratios), "rendered_ratio": median(render)}


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
