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


def test_demo_runs_the_whole_pipeline_locally_and_shows_incidents_open_and_resolve():
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    result = subprocess.run([sys.executable, "-m", "demo"], cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    story, after = out.split("5/5", 1)
    opened = re.findall(r"^  OPENED +(\S+)", story, re.M)
    resolved = re.findall(r"^  RESOLVED +(\S+)", story, re.M)
    assert len(opened) == 3 and sorted(opened) == sorted(resolved)  # one alert per root cause, each resolved once
    for change in ("PutKeyPolicy", "DisableKey", "DetachRolePolicy"):
        assert f"what changed: {change} by alice@example.com" in story
    assert re.search(r"18 failure\(s\), 2 principal\(s\), 3 resource\(s\)", story)  # 36 records, 18 failures
    queued = int(re.search(r"the rules queued (\d+)", after).group(1))
    assert queued == 110  # every failure in samples/, no successful call
    records, alerts = map(int, re.search(r"(\d+) failure records -> (\d+) alerts", after).groups())
    assert records == 110 and alerts < records
    assert re.search(r"IncidentsResolved\s+3", out) and re.search(r"ChangesRecorded\s+4", out)
    # every alert is also an EventBridge event on the incidents bus (docs/events.md)
    put = int(re.search(r"INCIDENT EVENTS on the bus \S+ \((\d+):", out).group(1))
    assert put == int(re.search(r"Notifications\s+(\d+)", out).group(1)) and "Incident Resolved" in out
