"""`make demo`, the README's main command, runs end to end and shows what it promises."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def test_demo_runs_the_whole_pipeline_locally():
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    result = subprocess.run([sys.executable, "-m", "demo"], cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    queued = int(re.search(r"the rule queued (\d+)", out).group(1))
    findings = int(re.search(r"FINDINGS \((\d+), one per failed call\)", out).group(1))
    messages = int(re.search(r"SNS MESSAGES RECEIVED BY THE SUBSCRIBER \((\d+)", out).group(1))
    assert queued == findings == 110  # every failure in samples/, no successful call
    assert messages == 90  # the burst of 20 identical failures is one alert
    assert re.search(r"SuppressedDuplicates\s+20", out) and re.search(r"FindingsTotal\s+110", out)
