"""Shared matching for the KMS key-state causes (from the error, or from DescribeKey)."""

from __future__ import annotations

import re

from ._base import Match, who


def key_state_match(call, facts, text: re.Pattern, states: frozenset[str], codes: frozenset[str], hints: tuple[str, ...] = ()):
    """``hints``: substrings one of which the message must hold before ``text`` (a slower regex) is tried."""
    key = facts.key if facts else None
    state = key.key_state if key is not None and key.found else ""
    if state and state not in states:
        return None  # DescribeKey says the key is in another state
    message = call.error_message
    if (not hints or any(h in message for h in hints)) and text.search(message) and (call.error_code in codes or call.service == "secretsmanager"):
        evidence = [f'the message says: "{call.error_message[:140]}"']
    elif state:
        evidence = [f"{call.action} failed with {call.error_code}"]
    else:
        return None
    if state:
        evidence.append(f"DescribeKey: KeyState {state}")
    return Match(tuple(evidence) + (who(call),), "high")
