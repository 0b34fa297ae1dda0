"""cold_import_vs_boto3: a fresh interpreter importing ``auditor.handler`` (with the function's
environment) divided by a fresh interpreter importing ``boto3`` alone; interleaved, order
alternating, median of the per-round ratios; ``-X importtime`` breakdown for information.
"""

from __future__ import annotations

import os
import subprocess

from .common import HANDLER_ENV, PY, median, timed


def measure(rounds: int) -> dict:
    env = dict(os.environ, **HANDLER_ENV)

    def start(module: str) -> float:
        return timed(lambda: subprocess.run([PY, "-c", f"import {module}"], env=env, check=True))

    start("auditor.handler"), start("boto3"), start("auditor.handler")  # page the files in, write .pyc
    handler, boto3, ratios = [], [], []
    for i in range(rounds):
        if i % 2:
            b, h = start("boto3"), start("auditor.handler")
        else:
            h, b = start("auditor.handler"), start("boto3")
        handler.append(h)
        boto3.append(b)
        ratios.append(h / b)
    bare = median(timed(lambda: subprocess.run([PY, "-c", "pass"], env=env, check=True)) for _ in range(5))
    return {"rounds": rounds, "handler_s": median(handler), "boto3_s": median(boto3), "bare_python_s": bare,
            "ratio": median(ratios), "top": importtime("auditor.handler", env)}


def importtime(module: str, env: dict, top: int = 15) -> list[tuple[int, int, str]]:
    """(cumulative us, self us, module) for the ``top`` largest cumulative imports."""
    err = subprocess.run([PY, "-X", "importtime", "-c", f"import {module}"], env=env, capture_output=True,
                         text=True).stderr
    rows = []
    for line in err.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), int(parts[0].split(":")[-1]), parts[2].rstrip()))
    return sorted(rows, reverse=True)[:top]
