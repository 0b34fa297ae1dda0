"""Shared matching for the KMS key-state causes (from the error, or from DescribeKey)."""

from __future__ import annotations

import re

from ._base import Match
from ._denied import who


def key_state_match(call, facts, text: re.Pattern, states: frozenset[str], codes: frozenset[str]):
    key = facts.key if facts else None
    state = key.key_state if key is not None and key.found else ""
    if state and state not in states:
        return None  # DescribeKey says the key is in another state
    if text.search(call.error_message) and (call.error_code in codes or call.service == "secretsmanager"):
        evidence = [f'the message says: "{call.error_message[:140]}"']
    elif state:
        evidence = [f"{call.action} failed with {call.error_code}"]
    else:
        return None
    if state:
        evidence.append(f"DescribeKey: KeyState {state}")
    return Match(tuple(evidence) + (who(call),), "high")
