"""Realistic incident notices for the event and on-call tests: incidents and findings built the
pure way (record -> parse -> classify -> root -> the CLI's book of incidents) from the demo's
scenario records and the fixture corpus, as ``Incident.to_dict`` and ``Finding.to_dict`` give them."""

from __future__ import annotations

import copy
import dataclasses

from auditor.classify import classify, root_of
from auditor.cli.triage import Book
from auditor.incidents import Failure
from auditor.lifecycle import Settings
from auditor.records import parse_record
from auditor.roots import affected
from demo import scenarios as s

from .conftest import fixture_records

SOURCE = "secrets-kms-failure-auditor"
BUS = "AuditorUnderTest-incidents"


def failure_of(record: dict, facts=None) -> Failure:
    call = parse_record(record)
    finding = classify(call, facts)
    return Failure(finding, root_of(finding.cause, call, facts), ("k",), (call.event_id,), call.principal.identity_arn,
                   affected(call))


def notice(failures: list[dict], changes: list[dict] = (), status: str = "opened", facts=None) -> tuple[dict, dict]:
    """(incident dict, finding dict) of the first incident the records make, as a notice of ``status``."""
    book = Book(Settings(quiet=1800, update_window=900))
    for change in changes:
        book.add_change(parse_record(change))
    made = [failure_of(r, facts) for r in failures]
    for failure in made:
        book.add_failure(failure)
    incident = book.incidents()[0]
    opened_at = s.T0.timestamp() + 30  # as the state would have it
    incident = dataclasses.replace(incident, opened_at=opened_at, status="resolved" if status == "resolved" else "open",
                                   resolved_at=opened_at + 2400 if status == "resolved" else 0.0)
    return incident.to_dict(status), made[-1].finding.to_dict()


def scenario_notices(status: str = "opened") -> dict[str, tuple[dict, dict]]:
    """One notice per root kind the demo's story has (each with the change that started it)."""
    other_key = s.KEY_ARN.replace("1234abcd", "0987dcba")
    return {
        "key-policy": notice([s.decrypt_for_secret_denied(t, role, "prod/orders/db") for t, role in ((0, "orders-api"), (60, "billing"))],
                             [s.put_key_policy(-900)], status),
        "key-state": notice([s.decrypt_disabled(t, "ingest", "s3.amazonaws.com", other_key) for t in (10, 70)],
                            [s.disable_key(-300, other_key)], status),
        "principal-permissions": notice([s.identity_denied(t, "checkout", "prod/a") for t in (0, 30)],
                                        [s.detach_role_policy(-60, "checkout", "arn:aws:iam::111122223333:policy/p")], status),
        "org-policy": notice([s.scp_denied(0, "checkout", "prod/a", "arn:aws:organizations::999988887777:policy/o-a1b2c3d4e5/service_control_policy/p-12345678")],
                             [s.attach_scp(-60, "p-12345678", "111122223333")], status),
        "principal-credentials": notice([s.expired(0, "reports", "prod/r")], (), status),
    }


def fixture_notices(status: str = "opened") -> list[tuple[str, dict, dict]]:
    """(cause, incident, finding) for every fixture record of a failure (every cause, every root kind)."""
    from auditor.facts import Facts

    out = []
    for cause, path, record, facts in fixture_records():
        if cause == "success":
            continue
        try:
            incident, finding = notice([record], (), status, Facts.from_dict(facts) if facts else None)
        except (IndexError, ValueError):
            continue  # a record that is not a failure on its own (a partner half)
        out.append((f"{cause}/{path.name}", incident, finding))
    return out


def with_extra_keys(incident: dict) -> dict:
    """The incident as the function will soon give it: keys this module does not know yet."""
    extra = copy.deepcopy(incident)
    extra["ended_by"] = {"action": "PutKeyPolicy", "event_id": "f5108be5-0000-4000-8000-000000000001"}
    extra["superseded_by"] = None
    extra["late"] = True
    extra["principals"]["exact"] = False
    return extra
