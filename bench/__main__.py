"""`make bench`: the auditor's speed, each figure a ratio against a baseline timed in the same run.

    classify_vs_parse            parse + classify N records (complete findings) / json.loads
                                 of the same bytes                                              (target <= 1.5)
    cli_vs_jq                    auditor classify --format jsonl over .json.gz logs / jq filter  (target <= 0.35)
                                 (beside it, the CLI with the standard library only: AUDITOR_STDLIB=1)
    cold_start_vs_boto3_publish  fresh interpreter: import the handler + handle its first event /
                                 fresh interpreter: import boto3 + publish one SNS message,
                                 each until its work is done (teardown not counted)             (target <= 1.3)
    storm_requests_per_event     AWS requests per failure event, 10,000 failures over 3 root
                                 causes in SQS batches of 100, counted (botocore hooks)          (target <= 0.05)
    sweep_10k_requests           AWS requests of one scheduled run over 10,000 quiet open
                                 incidents (each resolved and announced once), counted         (information)
    warm invocation              handler time per event against a moto server                   (information)
    batch_vs_single              handler cost per event in SQS batches of 100 / one per call    (information)
    s3_vs_local                  the CLI over moto S3 / over the same files on disk              (information)

    .venv/bin/python -m bench [--rounds 5] [--seed 42] [--n 100000] [--cli-records 200000] [--per-file 2000]
                              [--import-rounds 15] [--sweep-incidents 10000] [--profile]
                              [--only classify,cli,cold,storm,sweep,warm,s3]

The corpus is generated (bench/corpus.py) and cached under bench/.corpus/. The last lines are
machine-readable, one per figure (``nan`` when a figure could not be measured, with the reason
above). A missed target prints MISSED and, with the figure, where the time goes (cProfile for
classify_vs_parse, a stage breakdown for cli_vs_jq); --profile prints those always. Exit status
0 whatever the figures; non-zero only if the harness itself fails.
"""

from __future__ import annotations

import argparse
import sys
import time

from . import classify_vs_parse, cli_vs_jq, cold_start, corpus, s3_vs_local, storm, sweep, warm_invocation
from .common import handler_available, machine

TARGETS = {"classify_vs_parse": 1.5, "cli_vs_jq": 0.35, "cold_start_vs_boto3_publish": 1.3,
           "storm_requests_per_event": 0.05}
ORDER = ("classify_vs_parse", "cli_vs_jq", "cold_start_vs_boto3_publish", "storm_requests_per_event", "sweep_10k_requests",
         "batch_vs_single", "s3_vs_local")
#: Figures that are counts, not ratios.
COUNTS = {"sweep_10k_requests"}


def say(text: str = "") -> None:
    print(text, flush=True)


def verdict(name: str, value) -> str:
    if value is None:
        return "skipped"
    target = TARGETS.get(name)
    if target is None:
        return "information"
    return f"ok (<= {target})" if value <= target else f"MISSED (target <= {target})"


def _load() -> str:
    try:
        import os

        return f"{os.getloadavg()[0]:.2f}"
    except (AttributeError, OSError):
        return "?"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--import-rounds", type=int, default=15)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--cli-records", type=int, default=200_000)
    p.add_argument("--per-file", type=int, default=corpus.PER_FILE)
    p.add_argument("--profile", action="store_true", help="print the profiles even when the targets are met")
    p.add_argument("--sweep-incidents", type=int, default=sweep.TOTAL)
    p.add_argument("--only", default="classify,cli,cold,storm,sweep,warm,s3")
    args = p.parse_args(argv)
    only = set(args.only.split(","))
    started = time.perf_counter()
    m = machine()
    load_start = _load()
    say(f"bench: {m['text']}; seed {args.seed}, rounds {args.rounds}; load average {load_start}")
    figures: dict[str, float | None] = dict.fromkeys(ORDER)
    rows: list[tuple[str, str, str, str]] = []  # figure, measured, baseline, note

    # ---- 1. classify_vs_parse -------------------------------------------------------------
    if "classify" in only:
        t = time.perf_counter()
        c = corpus.corpus(args.n, args.seed)
        say(f"corpus: {args.n} records ({sum(map(len, c.lines)) / 1e6:.0f} MB, {len(c.files)} files of "
            f"{args.per_file}) in {time.perf_counter() - t:.1f} s")
        r = classify_vs_parse.measure(args.n, args.rounds, args.seed)
        figures["classify_vs_parse"] = r["ratio"]
        rows.append(("classify_vs_parse", f"{r['parse_classify_s']:.3f} s parse+classify",
                     f"{r['json_loads_s']:.3f} s json.loads",
                     f"N={r['n']} ({r['failures']} failures, {r['bytes'] / 1e6:.0f} MB), {r['rounds']} rounds"))
        say(f"classify_vs_parse: json.loads {r['json_loads_s']:.3f} s, parse+classify {r['parse_classify_s']:.3f} s "
            f"({r['n'] / r['parse_classify_s'] / 1000:.0f}k records/s), ratio {r['ratio']:.3f}")
        say(f"  per round: {', '.join(f'{x:.3f}' for x in r['ratios'])}; for information, with every finding rendered "
            f"too (Finding.to_json, the function's and the CLI's JSON): ratio {r['rendered_ratio']:.3f}")
        if args.profile or r["ratio"] > TARGETS["classify_vs_parse"]:
            say("  cProfile of parse+classify (json.loads included), top 20 by tottime:")
            say(classify_vs_parse.profile(args.n, args.seed))

    # ---- 2. cli_vs_jq ---------------------------------------------------------------------
    if "cli" in only:
        t = time.perf_counter()
        logs = corpus.log_files(args.cli_records, args.seed, args.per_file)
        say(f"log files: {args.cli_records} records in {logs} ({time.perf_counter() - t:.1f} s)")
        r = cli_vs_jq.measure(logs, args.rounds)
        gz = f"{r['files']} files, {r['bytes_gz'] / 1e6:.0f} MB gzip"
        floor = (f"floor (gunzip + json.loads only): {r['floor_single_s']:.2f} s in 1 process, "
                 f"{r['floor_jobs_s']:.2f} s in {r['jobs']} processes")
        if r.get("jq"):
            figures["cli_vs_jq"] = r["ratio"]
            rows.append(("cli_vs_jq", f"{r['cli_s']:.2f} s auditor ({r['jobs']} workers)", f"{r['jq_s']:.2f} s jq",
                         f"{args.cli_records} records, {gz}, {r['rounds']} rounds; {r['libraries']}"))
            say(f"cli_vs_jq: auditor classify {r['cli_s']:.2f} s ({r['jobs']} workers, its default; {r['libraries']}), "
                f"jq {r['jq_s']:.2f} s [{r['jq_cmd']}], ratio {r['ratio']:.3f}")
            say(f"  per round: {', '.join(f'{x:.3f}' for x in r['ratios'])}; auditor {r['cli_range'][0]:.2f}-"
                f"{r['cli_range'][1]:.2f} s, jq {r['jq_range'][0]:.2f}-{r['jq_range'][1]:.2f} s")
            say(f"  side by side, the same rounds: the CLI with the standard library only (AUDITOR_STDLIB=1) "
                f"{r['cli_stdlib_s']:.2f} s ({r['cli_stdlib_range'][0]:.2f}-{r['cli_stdlib_range'][1]:.2f}), ratio "
                f"{r['stdlib_ratio']:.3f} ({', '.join(f'{x:.3f}' for x in r['stdlib_ratios'])}); with {r['libraries']} "
                f"{r['cli_s']:.2f} s, ratio {r['ratio']:.3f}")
            say(f"  for information: jq in {r['jobs']} parallel pipelines {r['jq_parallel_s']:.2f} s "
                f"(auditor / that = {r['ratio_vs_parallel_jq']:.3f}); {floor}; auditor / floor in {r['jobs']} "
                f"processes = {r['cli_s'] / r['floor_jobs_s']:.2f}")
        else:
            rows.append(("cli_vs_jq", f"{r['cli_s']:.2f} s auditor", "jq not found", "skipped"))
            say(f"cli_vs_jq: SKIPPED, jq is not installed (/usr/bin/jq); auditor classify {r['cli_s']:.2f} s; {floor}")
        if args.profile or figures["cli_vs_jq"] is None or figures["cli_vs_jq"] > TARGETS["cli_vs_jq"]:
            one = cli_vs_jq.cli_single_job(logs)
            fixed = cli_vs_jq.start_overhead(logs)
            b = cli_vs_jq.breakdown(logs)
            total = sum(b["stages"].values())
            say(f"  where the CLI's time goes (one process, stage by stage over all {r['files']} files, "
                f"{b['records']} records, {b['findings']} findings, {b['output_bytes'] / 1e6:.0f} MB of JSON Lines):")
            for stage, sec in b["stages"].items():
                say(f"    {stage:<14} {sec:7.3f} s  {sec / total * 100:5.1f} %")
            say(f"    {'sum':<14} {total:7.3f} s   (auditor.cli.stages.process end to end: {b['process_bytes_s']:.3f} s)")
            say(f"  process start: python {fixed['python_s'] * 1000:.0f} ms, + import auditor.cli "
                f"{fixed['import_cli_s'] * 1000:.0f} ms; auditor classify over one file {fixed['one_file_s'] * 1000:.0f} ms; "
                f"--jobs 1 over all files {one:.2f} s vs {r['cli_s']:.2f} s with {r['jobs']} workers")

    # ---- 3. cold_start_vs_boto3_publish and 4. storm_requests_per_event -------------------
    missing = handler_available() if only & {"cold", "storm", "warm"} else ""
    if "cold" in only:
        if missing:
            rows.append(("cold_start_vs_boto3_publish", "-", "-", f"skipped: {missing}"))
            say(f"cold_start_vs_boto3_publish: SKIPPED, {missing}")
        else:
            r = cold_start.measure(args.import_rounds)
            figures["cold_start_vs_boto3_publish"] = r["ratio"]
            rows.append(("cold_start_vs_boto3_publish", f"{r['auditor_s'] * 1000:.0f} ms import handler + first event",
                         f"{r['baseline_s'] * 1000:.0f} ms import boto3 + one Publish",
                         f"fresh interpreters until the work is done, moto server, {r['rounds']} rounds, the asset as "
                         "built with the runtime's Python (bytecode)"))
            say(f"cold_start_vs_boto3_publish: handler import + first event {r['auditor_s'] * 1000:.0f} ms, boto3 import + "
                f"one SNS publish {r['baseline_s'] * 1000:.0f} ms, ratio {r['ratio']:.3f}")
            source = cold_start.measure(max(5, args.import_rounds // 2), bytecode=False)
            say(f"  for information, an asset synthesized without the runtime's Python (sources only, compiled at "
                f"every cold start): {source['auditor_s'] * 1000:.0f} ms vs {source['baseline_s'] * 1000:.0f} ms, "
                f"ratio {source['ratio']:.3f}")
            if args.profile or r["ratio"] > TARGETS["cold_start_vs_boto3_publish"]:
                say("  where the first event's time goes (one fresh interpreter, milliseconds):")
                for stage, ms in cold_start.stages().items():
                    say(f"    {stage:<40} {ms:7.1f}")
    if "storm" in only:
        if missing:
            rows.append(("storm_requests_per_event", "-", "-", f"skipped: {missing}"))
        else:
            r = storm.measure()
            figures["storm_requests_per_event"] = r["ratio"]
            rows.append(("storm_requests_per_event", f"{r['requests']} AWS requests", f"{r['events']} failure events",
                         f"3 root causes + 1 policy version breaking {r['shared_roles']} roles, batches of {storm.BATCH}, "
                         f"{r['alerts']} alerts sent ({r['shared_messages']} for the {r['shared_roles']} roles)"))
            say(f"storm_requests_per_event: {r['requests']} requests for {r['events']} failure events ({r['alerts']} alerts; "
                f"the policy version breaking {r['shared_roles']} roles: {r['shared_messages']} message(s), target <= 3), "
                f"ratio {r['ratio']:.4f}; by operation (IAM lookups included): "
                + ", ".join(f"{k} {v}" for k, v in r["by_operation"].items()))

    if "sweep" in only:
        r = sweep.measure(args.sweep_incidents)
        figures["sweep_10k_requests"] = r["requests"]
        rows.append(("sweep_10k_requests", f"{r['requests']} AWS requests", f"{r['incidents']} quiet open incidents",
                     f"one scheduled run: {r['resolved']} resolved and sent, {r['left_after']} left for the next"))
        say(f"sweep_10k_requests: {r['requests']} requests for one scheduled run over {r['incidents']} quiet open incidents "
            f"({r['per_incident']:.3f} per incident; {r['resolved']} resolved and announced, {r['left_after']} sent by a "
            f"second run, open afterwards {r['open_after']}); by operation: "
            + ", ".join(f"{k} {v}" for k, v in r["by_operation"].items())
            + f"; {r['run_s']:.0f} s against the in-process stand-in (moto parses every update; not a timing figure)")

    # ---- 4. warm invocation and batch_vs_single -------------------------------------------
    if "warm" in only:
        if missing:
            rows.append(("warm invocation", "-", "-", f"skipped: {missing}"))
            rows.append(("batch_vs_single", "-", "-", f"skipped: {missing}"))
            say(f"warm invocation: SKIPPED, {missing}")
        else:
            w = warm_invocation.measure(args.n, args.seed)
            rows.append(("warm invocation", f"{w['per_event_ms']:.2f} ms/event (median {w['median_ms']:.2f}, "
                         f"p95 {w['p95_ms']:.2f})", "-", f"{w['events']} events, moto server; classification "
                         f"{w['classification_share'] * 100:.1f} %"))
            say(f"warm invocation: {w['per_event_ms']:.2f} ms per event (median {w['median_ms']:.2f}, p95 "
                f"{w['p95_ms']:.2f}) over {w['events']} events against moto; classification (parse + classify) "
                f"is {w['classification_share'] * 100:.1f} % of it")
            b = w["batch"]
            figures["batch_vs_single"] = b["ratio"]
            rows.append(("batch_vs_single", f"{b['batch_ms']:.2f} ms/event in batches of 100",
                         f"{b['single_ms']:.2f} ms/event single", f"{b['events']} events, {b['rounds']} rounds"))
            say(f"batch_vs_single: {b['batch_ms']:.2f} ms per event in SQS batches of 100, {b['single_ms']:.2f} ms "
                f"one event per invocation, ratio {b['ratio']:.3f}")

    # ---- 5. s3_vs_local -------------------------------------------------------------------
    if "s3" in only:
        logs = corpus.log_files(args.cli_records, args.seed, args.per_file, limit=20)
        r = s3_vs_local.measure(logs, rounds=3)
        figures["s3_vs_local"] = r["ratio"]
        rows.append(("s3_vs_local", f"{r['s3_seconds']:.2f} s from moto S3", f"{r['local_seconds']:.2f} s from disk",
                     f"{r['files']} files ({r['bytes'] / 1e6:.0f} MB gzip), {r['rounds']} rounds"))
        say(f"s3_vs_local: {r['files']} files, CLI over moto S3 {r['s3_seconds']:.2f} s, over disk "
            f"{r['local_seconds']:.2f} s, ratio {r['ratio']:.3f}")

    # ---- table and machine-readable lines --------------------------------------------------
    say()
    say(f"machine: {m['text']}; load average (1 min) {load_start} at start, {_load()} at end "
        "(other work on the machine skews the multi-process figures)")
    say(f"seed {args.seed}; N={args.n} (classify), {args.cli_records} records in files of {args.per_file} (CLI); "
        f"rounds {args.rounds} (imports {args.import_rounds}); medians; total {time.perf_counter() - started:.0f} s")
    header = ("figure", "ratio", "verdict", "measured", "baseline", "conditions")
    table = [header]
    for name, measured, baseline, note in rows:
        value = figures.get(name)
        shown = "-" if value is None else (f"{value:.0f}" if name in COUNTS else f"{value:.3f}")
        table.append((name, shown, verdict(name, value) if name in figures
                      else "information", measured, baseline, note))
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for row in table:
        say("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    for name in ORDER:
        value = figures[name]
        say(f"{name}={'nan' if value is None else (f'{value:.0f}' if name in COUNTS else f'{value:.3f}')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
