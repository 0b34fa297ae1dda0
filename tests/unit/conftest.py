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


def botocore_regions() -> dict[str, str]:
    """Every Region botocore knows (its partitions.json, without the ``*-global`` pseudo-Regions) -> its partition."""
    import botocore

    data = json.loads((Path(botocore.__file__).parent / "data" / "partitions.json").read_text())
    return {region: p["id"] for p in data["partitions"] for region in p["regions"] if not region.endswith("-global")}


@pytest.fixture(scope="session")
def corpus():
    return fixture_records()
