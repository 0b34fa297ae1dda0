"""Helpers shared by the measurements: timing, medians, the machine, the installed commands."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

PY = sys.executable
BIN = Path(PY).parent
AUDITOR = str(BIN / "auditor")

#: The environment the Lambda function has (infra sets these), for the import measurements.
HANDLER_ENV = {
    "POWERTOOLS_SERVICE_NAME": "secrets-kms-auditor",
    "POWERTOOLS_METRICS_NAMESPACE": "SecretsKmsAuditor",
    "FINDINGS_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:findings",
    "DEDUP_TABLE_NAME": "dedup",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def machine() -> dict:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f", {int(line.split()[1]) / 1024 / 1024:.0f} GB RAM"
    except OSError:
        pass
    return {"cpu": model, "cores": cores, "python": platform.python_version(),
            "text": f"{model}, {cores} cores{mem}, Python {platform.python_version()} ({platform.system()} {platform.release()})"}


def start_moto() -> tuple[subprocess.Popen, str]:
    """``moto_server`` in its own process on a free loopback port (AWS is remote: an in-process
    server would charge its CPU to what is timed). Returns the process and its endpoint URL
    once it accepts connections; the caller terminates it."""
    import socket

    from demo.stand_in import free_port

    import os

    from demo.scenarios import ACCOUNT

    port = free_port()
    # the scenarios' account: what moto creates (IAM policies, roles) is named as the records name it
    server = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "MOTO_ACCOUNT_ID": ACCOUNT})
    for _ in range(400):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return server, f"http://127.0.0.1:{port}"
        if server.poll() is not None:
            raise RuntimeError("moto_server exited at start")
        time.sleep(0.05)
    server.kill()
    raise RuntimeError("moto_server did not start")


def stop(server: subprocess.Popen) -> None:
    """Stop a server started here: SIGTERM, then SIGKILL if it has not exited within 10 s (a
    moto holding a large state can take longer than that to shut down on a loaded machine)."""
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def median(values) -> float:
    return statistics.median(list(values))


def handler_available() -> str:
    """'' when ``auditor.handler`` can be imported in a fresh interpreter, else why not."""
    import importlib.util
    import subprocess

    if importlib.util.find_spec("auditor.handler") is None:
        return "functions/auditor/handler.py does not exist yet"
    done = subprocess.run([PY, "-c", "import auditor.handler"], env=dict(os.environ, **HANDLER_ENV),
                          capture_output=True, text=True)
    if done.returncode:
        return "import auditor.handler fails: " + (done.stderr.strip().splitlines() or ["?"])[-1]
    return ""


class LambdaContext:
    function_name, memory_limit_in_mb, aws_request_id = "bench", 256, "bench"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    function_version = "$LATEST"
    log_group_name, log_stream_name = "/aws/lambda/bench", "bench"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 300_000
