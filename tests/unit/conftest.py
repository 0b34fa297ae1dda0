"""Shared helpers for the core's unit tests: the fixture corpus, loaded once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def fixture_records():
    """(cause id, path, record, facts dict | None) for every fixture under tests/fixtures/<cause>/."""
    out = []
    for path in sorted(FIXTURES.glob("*/*.json")):
        cause = path.parent.name
        facts_path = path.with_suffix(".facts")
        facts = json.loads(facts_path.read_text()) if facts_path.exists() else None
        out.append((cause, path, json.loads(path.read_text()), facts))
    return out


@pytest.fixture(scope="session")
def corpus():
    return fixture_records()
