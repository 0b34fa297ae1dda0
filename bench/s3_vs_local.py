"""s3_vs_local: the CLI over gzip CloudTrail files served by a local moto S3 vs the same files on disk.

For information, not a target: it shows what listing, GETs over HTTP and the download pipeline
add to classification. moto runs in its own process (as S3 would be remote), the CLI runs as
users run it (the installed console script, a fresh process per run).

    .venv/bin/python -m bench.s3_vs_local [CORPUS_DIR] [--rounds 3] [--jobs N]

``measure(corpus_dir, rounds)`` is what ``make bench`` can call; it returns
``{"files", "bytes", "s3_seconds", "local_seconds", "ratio", ...}`` (medians over rounds).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.common import start_moto, stop

PY = Path(sys.executable)
AUDITOR = str(PY.with_name("auditor"))
ORG, ACCOUNT, REGION, DAY = "o-a1b2c3d4e5", "111122223333", "us-east-1", "2026/11/23"


def _run(args: list[str], env: dict) -> float:
    started = time.perf_counter()
    subprocess.run([AUDITOR, "classify", *args, "--format", "jsonl", "--quiet"], stdout=subprocess.DEVNULL,
                   env=env, check=True)
    return time.perf_counter() - started


def measure(corpus_dir, rounds: int = 3, jobs: int | None = None, endpoint: str | None = None) -> dict:
    """Median wall time of ``auditor classify`` over ``corpus_dir``'s ``*.json.gz`` read from disk and
    from S3 (the same files uploaded under an organization trail's layout, one day, one account
    and region). Starts a moto server in its own process unless ``endpoint`` names one."""
    import boto3

    files = sorted(Path(corpus_dir).glob("*.json.gz"))
    if not files:
        raise ValueError(f"no .json.gz files in {corpus_dir}")
    server = None
    if endpoint is None:
        server, endpoint = start_moto()
    env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
               AWS_DEFAULT_REGION=REGION)
    env.pop("AWS_PROFILE", None)
    env.pop("AWS_SESSION_TOKEN", None)
    try:
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="testing",
                          aws_secret_access_key="testing")
        bucket = f"bench-org-trail-{os.getpid()}"
        s3.create_bucket(Bucket=bucket)
        for path in files:
            s3.put_object(Bucket=bucket, Key=f"AWSLogs/{ORG}/{ACCOUNT}/CloudTrail/{REGION}/{DAY}/{path.name}",
                          Body=path.read_bytes())
        extra = ["--jobs", str(jobs)] if jobs else []
        # --until the end of the day: the files' names carry times of that day.
        remote = [f"s3://{bucket}/", "--since", DAY.replace("/", "-"), "--until", DAY.replace("/", "-") + "T23:59:59Z", *extra]
        local = [str(corpus_dir), *extra]
        _run(remote, env)  # warm moto and the page cache once
        _run(local, env)
        s3_t, local_t = [], []
        for _ in range(rounds):
            s3_t.append(_run(remote, env))
            local_t.append(_run(local, env))
        return {"files": len(files), "bytes": sum(p.stat().st_size for p in files), "rounds": rounds,
                "jobs": jobs or "default", "s3_seconds": statistics.median(s3_t),
                "local_seconds": statistics.median(local_t),
                "ratio": statistics.median(a / b for a, b in zip(s3_t, local_t))}
    finally:
        if server is not None:
            stop(server)


def main() -> int:
    p = argparse.ArgumentParser(prog="bench.s3_vs_local")
    p.add_argument("corpus", nargs="?", help="a directory of .json.gz CloudTrail files (default: the bench corpus)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--jobs", type=int, help="auditor classify --jobs (default: the CLI's default)")
    args = p.parse_args()
    corpus = args.corpus
    if corpus is None:
        from bench.corpus import log_files

        corpus = log_files(200_000, 42, limit=20)
    r = measure(corpus, args.rounds, args.jobs)
    print(f"s3 vs local: {r['files']} files ({r['bytes'] / 1e6:.1f} MB gzip), jobs {r['jobs']}: CLI reading moto S3 "
          f"{r['s3_seconds']:.2f} s, reading disk {r['local_seconds']:.2f} s (median of {r['rounds']})")
    print(f"s3_vs_local={r['ratio']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
