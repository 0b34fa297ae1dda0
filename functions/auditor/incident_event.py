"""An incident notice as an EventBridge event, and what on-call tools receive from it. Pure.

``incident_event(status, incident, finding, ...)`` returns one ``PutEvents`` entry for the
stack's incidents bus: ``source`` the auditor's (``contract.IncidentEvent.SOURCE``),
``detail-type`` ``Incident Opened``, ``Incident Updated`` or ``Incident Resolved``, and a
versioned ``detail`` (docs/events.md has the schema):

* ``incident``: the incident as ``Incident.to_dict`` gives it, every key copied through (keys
  added later travel without a change here);
* ``finding``: the finding that represents it (the one that opened or last updated it);
* ``links``: the AWS console page of the root (``console_link``) and the cause's
  troubleshooting page;
* ``oncall``: the request bodies the stack's PagerDuty and Opsgenie deliveries send, rendered
  here. EventBridge's input transformer does not escape the values it substitutes
  (eb-transform-target-input.html, "Common issues": "EventBridge doesn't escape values extracted
  by Input Path, when populating the Input Template"), so no template can safely carry a text
  with a quote in it (an error message, a secret's name); the rules pass these objects verbatim
  with ``InputPath`` instead, and only the routing key is added on the way (by the forwarder);
* ``truncated``: the fields the size rule cut (below), ``[]`` when none.

**The size rule.** EventBridge counts an entry as the UTF-8 bytes of ``Source``,
``DetailType``, ``Detail`` and each of ``Resources`` (plus 14 for ``Time``), and a request's
entries together must stay under 256 KB (calculate-putevents-entry-size.html). An incident
entry is kept within ``ENTRY_BUDGET`` (64 KB): four fit in one request, and an event routed on
to SQS, SNS, Step Functions or Lambda (256 KB each) fits there too, whatever a rule adds around
it. A usual incident is 4-10 KB. When one is larger (text from the event is the caller's to
choose), these steps run in this order until it fits, each field cut recorded in
``detail.truncated``:

1. ``texts``: long texts cut to 1,000 characters (the finding's error message, user agent,
   evidence and remediation; the incident's evidence, remediation, searched, title, root label,
   the change's summary); the finding's policy statement dropped if larger;
2. ``lists``: lists cut to 20 items (listed principals and resources, evidence, joined records,
   later changes);
3. ``finding``: the finding replaced by its summary (ids, cause, what failed, on what);
4. ``incident``: every other field of the incident bounded (texts to 256 characters, lists to
   5 items, nesting to 4 levels);
5. ``core``: the incident reduced to its core (id, status, occurrence, cause, title, severity,
   root, times, counts);
6. ``oncall``: the on-call bodies' longer texts shortened (never reached by any input a test
   could build: kept so the rule cannot fail).

The on-call bodies are bounded on their own (PagerDuty's and Opsgenie's field limits), so the
incident and finding are cut first. Nothing here does I/O; only ``json`` is imported at load
(the function imports this module on its cold start path).
"""

from __future__ import annotations

import json
import re
from typing import Any, Optional

from .contract import IncidentEvent, Status

__all__ = ["ENTRY_BUDGET", "PUT_EVENTS_LIMIT", "batches", "console_link", "entry_size", "incident_event",
           "opsgenie_request", "pagerduty_change_event", "pagerduty_event"]

#: EventBridge's limit on one PutEvents request, its entries counted together (bytes).
PUT_EVENTS_LIMIT = 256 * 1024
#: At most this many entries in one PutEvents request.
PUT_EVENTS_ENTRIES = 10
#: What one incident entry may take (see the module's docstring).
ENTRY_BUDGET = 64 * 1024

STATUSES = (Status.OPENED, Status.UPDATED, Status.RESOLVED)
#: Finding severity -> PagerDuty severity / Opsgenie priority.
PAGERDUTY_SEVERITY = {"critical": "critical", "high": "error", "medium": "warning", "low": "info", "info": "info"}
OPSGENIE_PRIORITY = {"critical": "P1", "high": "P2", "medium": "P3", "low": "P4", "info": "P5"}
CLIENT = "Secrets Manager and KMS failure auditor"

TEXT_LIMIT = 1000
LIST_LIMIT = 20
TIGHT_TEXT, TIGHT_LIST, TIGHT_DEPTH = 256, 5, 4
MAX_DEPTH = 32  # nesting kept when copying what the caller gave (anything deeper is cut)
MAX_NODES = 200_000  # objects and lists copied at most (a structure sharing itself could be endless)

#: The fields of ``Incident.to_dict`` the steps know; any other key is copied and bounded in step 4.
CORE_INCIDENT = ("id", "status", "occurrence", "cause", "title", "severity", "root", "first_failure", "last_failure",
                 "failures", "opened_at", "resolved_at", "open_seconds")
FINDING_SUMMARY = ("schema_version", "event_id", "event_time", "account", "region", "service", "action", "error_code",
                   "cause", "title", "severity", "confidence", "resource", "doc_url", "fingerprint")


# --------------------------------------------------------------------------------------------
# The entry
# --------------------------------------------------------------------------------------------
def incident_event(status: str, incident: dict, finding: dict, *, source: str, bus_name: str,
                   account: str = "", region: str = "") -> dict:
    """One PutEvents entry for an incident notice (``status``: opened | updated | resolved).

    ``incident`` is ``Incident.to_dict(status)``, ``finding`` is ``Finding.to_dict()`` (neither is
    changed); ``account`` and ``region`` default to the finding's. The entry fits ``ENTRY_BUDGET``
    (the size rule above); ``entry_size`` measures it as EventBridge does."""
    if status not in STATUSES:
        raise ValueError(f"status {status!r}: expected one of {STATUSES}")
    inc = _jsonable(incident if isinstance(incident, dict) else {})
    fnd = _jsonable(finding if isinstance(finding, dict) else {})
    account = account or _text(fnd.get("account"))
    region = region or _text(fnd.get("region"))
    root = inc.get("root") if isinstance(inc.get("root"), dict) else {}
    links = {"console": console_link(root, account, region), "troubleshooting": _doc_link(fnd.get("doc_url"))}
    detail = {
        "schema_version": IncidentEvent.SCHEMA_VERSION,
        "status": status,
        "bus": _text(bus_name),
        "incident": inc,
        "finding": fnd,
        "links": links,
        "oncall": {
            "pagerduty": pagerduty_event(status, inc, fnd, links, account=account, region=region),
            "opsgenie": opsgenie_request(status, inc, fnd, links, account=account, region=region),
        },
        "truncated": [],
    }
    entry = {"Source": source, "DetailType": IncidentEvent.DETAIL_TYPES[status], "Detail": "",
             "EventBusName": bus_name, "Resources": _resources(root, region)}
    entry["Detail"] = _fit(entry, detail)
    return entry


def entry_size(entry: dict) -> int:
    """An entry's size as EventBridge computes it (calculate-putevents-entry-size.html)."""
    size = 14 if entry.get("Time") is not None else 0
    for name in ("Source", "DetailType", "Detail"):
        value = entry.get(name)
        if value is not None:
            size += len(value.encode("utf-8"))
    for resource in entry.get("Resources") or ():
        if resource is not None:
            size += len(resource.encode("utf-8"))
    return size


def batches(entries: list[dict], limit: int = PUT_EVENTS_LIMIT - 1, most: int = PUT_EVENTS_ENTRIES) -> list[list[dict]]:
    """``entries`` in order, grouped into PutEvents requests: at most ``most`` entries and
    ``limit`` bytes (``entry_size``, counted together) each."""
    out: list[list[dict]] = []
    size = 0
    for entry in entries:
        n = entry_size(entry)
        if not out or len(out[-1]) >= most or size + n > limit:
            out.append([])
            size = 0
        out[-1].append(entry)
        size += n
    return out


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _exceeds(value: Any, limit: int) -> bool:
    """Whether ``value``'s JSON surely has more than ``limit`` bytes: its texts' characters alone
    (a lower bound), counted until the limit is passed (a hostile input is not serialised whole)."""
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, dict):
            total += sum(len(k) for k in item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        if total > limit:
            return True
    return False


def _valid_utf8(text: str) -> str:
    """EventBridge takes valid UTF-8 only: a lone surrogate (from the caller's text) becomes '?'."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


def _fit(entry: dict, detail: dict) -> str:
    """``detail`` as JSON, cut by the size rule's steps until the entry fits ``ENTRY_BUDGET``."""
    room = ENTRY_BUDGET - entry_size({**entry, "Detail": ""})
    for step in (*_STEPS, None):
        if not _exceeds(detail, room):
            text = _valid_utf8(_dumps(detail))
            if _size(text) <= room:
                return text
        if step is None:
            break
        for path in step(detail):
            if path not in detail["truncated"]:
                detail["truncated"].append(path)
    raise ValueError(f"an incident entry cannot be cut to {ENTRY_BUDGET} bytes: its source, bus or resources alone are too large")


# ---- the size rule's steps, in order; each returns the paths it cut ----------------------------
def _cut_texts(detail: dict) -> list[str]:
    cut = []
    inc, fnd = detail["incident"], detail["finding"]
    for owner, prefix, names in ((fnd, "finding", ("error_message", "user_agent", "remediation", "evidence")),
                                 (inc, "incident", ("remediation", "evidence", "searched", "title"))):
        for name in names:
            if _shorten(owner, name, TEXT_LIMIT):
                cut.append(f"{prefix}.{name}")
    for owner, path in ((inc.get("root"), "incident.root.label"), (inc.get("change"), "incident.change.summary")):
        if isinstance(owner, dict) and _shorten(owner, path.rsplit(".", 1)[1], TEXT_LIMIT):
            cut.append(path)
    if isinstance(inc.get("later_changes"), list):
        if any(isinstance(c, dict) and _shorten(c, "summary", TEXT_LIMIT) for c in inc["later_changes"]):
            cut.append("incident.later_changes.summary")
    if fnd.get("policy") is not None and _exceeds(fnd["policy"], TEXT_LIMIT):
        fnd["policy"] = None
        cut.append("finding.policy")
    return cut


def _cut_lists(detail: dict) -> list[str]:
    cut = []
    inc, fnd = detail["incident"], detail["finding"]
    for owner, path in ((inc.get("principals"), "incident.principals.listed"), (inc.get("resources"), "incident.resources.listed"),
                        (inc, "incident.evidence"), (inc, "incident.later_changes"), (fnd, "finding.evidence"),
                        (fnd, "finding.joined")):
        name = path.rsplit(".", 1)[1]
        if isinstance(owner, dict) and isinstance(owner.get(name), list) and len(owner[name]) > LIST_LIMIT:
            owner[name] = owner[name][:LIST_LIMIT]
            cut.append(path)
    return cut


def _summarize_finding(detail: dict) -> list[str]:
    fnd = detail["finding"]
    summary = {k: _bounded(fnd[k], TIGHT_TEXT, TIGHT_LIST, 1) for k in FINDING_SUMMARY if k in fnd}
    principal = fnd.get("principal")
    if isinstance(principal, dict) and "arn" in principal:
        summary["principal"] = {"arn": _bounded(principal["arn"], TIGHT_TEXT, 0, 0)}
    summary["summarized"] = True
    detail["finding"] = summary
    return ["finding"]


def _bound_incident(detail: dict) -> list[str]:
    cut = []
    inc = detail["incident"]
    for key in list(inc):
        if key in ("id", "status", "occurrence", "failures"):
            continue
        bounded = _bounded(inc[key], TIGHT_TEXT, TIGHT_LIST, TIGHT_DEPTH)
        if bounded != inc[key]:
            inc[key] = bounded
            cut.append(f"incident.{key}")
    return cut


def _core_incident(detail: dict) -> list[str]:
    inc = detail["incident"]
    core = {k: _bounded(inc[k], TIGHT_TEXT, TIGHT_LIST, 2) for k in CORE_INCIDENT if k in inc}
    for name in ("principals", "resources"):
        if isinstance(inc.get(name), dict) and "count" in inc[name]:
            core[name] = {"count": _bounded(inc[name]["count"], 32, 0, 0)}
    dropped = sorted(set(inc) - set(core))
    detail["incident"] = core
    return ["incident." + k for k in dropped] + (["incident.principals.listed", "incident.resources.listed"]
                                                 if any(isinstance(inc.get(n), dict) for n in ("principals", "resources")) else [])


def _shorten_oncall(detail: dict) -> list[str]:
    oncall = detail["oncall"]
    pd = oncall.get("pagerduty", {})
    if isinstance(pd.get("payload"), dict):
        pd["payload"]["custom_details"] = {"incident": pd.get("dedup_key", "")}
    og = oncall.get("opsgenie", {})
    for name in ("description", "note"):
        _shorten(og, name, TIGHT_TEXT)
    if isinstance(og.get("details"), dict):
        og["details"] = {k: _bounded(v, 64, 0, 0) for k, v in list(og["details"].items())[:5]}
    return ["oncall"]


_STEPS = (_cut_texts, _cut_lists, _summarize_finding, _bound_incident, _core_incident, _shorten_oncall)


# ---- copying what the caller gave into plain, bounded JSON ------------------------------------
def _jsonable(value: Any, depth: int = 0, budget: Optional[list] = None) -> Any:
    """A copy made only of JSON's types: keys strings, tuples and sets lists, bytes text, no NaN,
    nothing nested deeper than MAX_DEPTH (texts are shared, not copied)."""
    if isinstance(value, str):
        return value  # a lone surrogate is replaced once, in the final text (_valid_utf8)
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    budget = [MAX_NODES] if budget is None else budget
    budget[0] -= 1
    if depth >= MAX_DEPTH or budget[0] < 0:  # deeper, or more, than any incident: a shared or cyclic structure
        return "…"
    if isinstance(value, dict):
        return {k if isinstance(k, str) else str(k): _jsonable(v, depth + 1, budget) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, depth + 1, budget) for v in value]
    if isinstance(value, (set, frozenset)):
        return [_jsonable(v, depth + 1, budget) for v in sorted(value, key=repr)]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)[:TEXT_LIMIT]


def _bounded(value: Any, text: int, items: int, depth: int) -> Any:
    """``value`` with texts cut to ``text`` characters, lists to ``items``, nesting to ``depth``."""
    if isinstance(value, str):
        return value if len(value) <= text else value[:text - 1] + "…"
    if isinstance(value, dict):
        if depth <= 0:
            return "…" if value else {}
        return {k[:64]: _bounded(v, text, items, depth - 1) for k, v in list(value.items())[:max(items, 1) * 4]}
    if isinstance(value, list):
        if depth <= 0:
            return []
        return [_bounded(v, text, items, depth - 1) for v in value[:items]]
    return value


def _shorten(owner: dict, name: str, limit: int) -> bool:
    """Cut ``owner[name]`` (a text, or each text of a list) to ``limit`` characters; whether it was."""
    value = owner.get(name)
    if isinstance(value, str) and len(value) > limit:
        owner[name] = value[:limit - 1] + "…"
        return True
    if isinstance(value, list) and any(isinstance(v, str) and len(v) > limit for v in value):
        owner[name] = [v[:limit - 1] + "…" if isinstance(v, str) and len(v) > limit else v for v in value]
        return True
    return False


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _doc_link(url: Any) -> str:
    from .text import doc_link  # the cause catalog: loaded on the function's path anyway

    return doc_link(url)


# --------------------------------------------------------------------------------------------
# Console links
# --------------------------------------------------------------------------------------------
_REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$")
_ACCOUNT = re.compile(r"^\d{12}$")
_ARN = re.compile(r"^arn:(?P<partition>aws[a-z-]*):(?P<service>[a-z0-9-]+):(?P<region>[a-z0-9-]*):(?P<account>\d{12}|):(?P<rest>.+)$")
_KEY_ID = re.compile(r"^(?:mrk-)?[0-9a-fA-F-]{8,64}$")
_VPCE = re.compile(r"^vpce-[0-9a-f]{8,17}$")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{1,127}$")
#: The console's host per partition (the partitions with a public console).
CONSOLES = {"aws": "console.aws.amazon.com", "aws-cn": "console.amazonaws.cn", "aws-us-gov": "console.amazonaws-us-gov.com"}


def partition_of(region: str) -> str:
    """The partition of a region name ('' for one without a public console, or no region)."""
    if not _REGION.match(region or ""):
        return ""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    if region.startswith(("us-iso", "eu-isoe", "us-isob", "us-isof")) or "-iso" in region:
        return ""
    return "aws"


def _console(partition: str, region: str, path: str, query: str = "", fragment: str = "") -> str:
    """``https://<region>.console.aws.amazon.com/<path>?region=<region>&<query>#<fragment>`` (the
    regional host in the commercial partition; China and GovCloud take the region as a query
    parameter). '' when the partition has no public console."""
    host = CONSOLES.get(partition)
    if host is None:
        return ""
    regional = bool(_REGION.match(region or "")) and partition_of(region) == partition
    if regional and partition == "aws":
        host = f"{region}.{host}"
    params = "&".join(p for p in ((f"region={region}" if regional else ""), query) if p)
    return f"https://{host}/{path}" + (f"?{params}" if params else "") + (f"#{fragment}" if fragment else "")


def _q(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


def cloudtrail_link(region: str, *, event_id: str = "", event_name: str = "", partition: str = "") -> str:
    """CloudTrail's event history in ``region``: one event, the events of one name, or all."""
    partition = partition or partition_of(region) or "aws"
    if event_id and re.fullmatch(r"[0-9a-fA-F-]{1,64}", event_id):
        return _console(partition, region, "cloudtrailv2/home", fragment=f"/events/{event_id}")
    if event_name and _NAME.match(event_name):
        return _console(partition, region, "cloudtrailv2/home", fragment=f"/events?EventName={event_name}")
    return _console(partition, region, "cloudtrailv2/home", fragment="/events")


def console_link(root: dict, account: str, region: str) -> str:
    """The AWS console page of an incident's root: the KMS key, the secret, the role or user and
    their policies, the IAM policy, the organization's policies, the VPC endpoint, the service's
    quotas; for the rest (a caller's requests, an unknown error) CloudTrail's event history in the
    region. The console shows the account you are signed in to (the root's account is in its id).

    ``region`` (the failure's) is used where the root names none; the partition comes from an ARN
    in the root, else from the region (China and GovCloud have consoles of their own). '' where
    no public console exists (the ISO partitions). Every name from the event is percent-encoded:
    the link always goes to the console's host."""
    rid = root.get("id") if isinstance(root, dict) else ""
    rid = rid if isinstance(rid, str) else ""
    region = region if _REGION.match(region or "") else ""
    partition = partition_of(region) if region else "aws"
    if region and not partition:
        return ""
    if "|" in rid:  # a caller's requests (request, unknown): '<caller>|<service>:<action>[|<error>]'
        action = rid.split("|")[1].partition(":")[2]
        return cloudtrail_link(region, event_name=action, partition=partition)
    kind, _, rest = rid.partition(":")

    def regional(acct_region_name: str) -> tuple[str, str]:
        """(region, name) of '<account>:<region>:<name>' (the region '' unless valid)."""
        parts = acct_region_name.split(":", 2)
        if len(parts) < 3:
            return region, ""
        r = parts[1] if _REGION.match(parts[1]) else region
        return r, parts[2]

    if kind == "key":
        arn = _ARN.match(rest)
        if arn and arn["service"] == "kms" and arn["rest"].startswith("key/"):
            p, r, key = arn["partition"], arn["region"] or region, arn["rest"][4:]
            if p not in CONSOLES:
                return ""
            if _KEY_ID.match(key):
                return _console(p, r, "kms/home", fragment=f"/kms/keys/{key}")
            return _console(p, r, "kms/home", fragment="/kms/keys")
    if kind == "key-of":
        return console_link({"id": rest}, account, region)
    if kind in ("key-named", "alias"):
        r, _ = regional(rest)
        return _console(partition_of(r) or partition, r, "kms/home", fragment="/kms/keys")
    if kind == "secret":
        r, name = regional(rest)
        p = partition_of(r) or partition
        if name:
            return _console(p, r, "secretsmanager/secret", query=f"name={_q(name)}")
        return _console(p, r, "secretsmanager/listsecrets")
    if kind in ("role", "user", "group"):
        parts = rest.split(":", 1)
        name = parts[1] if len(parts) == 2 else ""
        section = {"role": "roles", "user": "users", "group": "groups"}[kind]
        return _console(partition, "", "iam/home", fragment=f"/{section}/details/{_q(name)}" if name else f"/{section}")
    if kind == "policy":
        arn = _ARN.match(rest)
        if arn and arn["service"] == "iam":
            if arn["partition"] not in CONSOLES:
                return ""
            return _console(arn["partition"], "", "iam/home", fragment=f"/policies/details/{_q(rest)}")
        return _console(partition, "", "iam/home", fragment="/policies")
    if kind == "iam-policies":
        return _console(partition, "", "iam/home", fragment="/policies")
    if kind in ("org-policy", "org-policies"):
        return _console(partition, "", "organizations/v2/home/policies")
    if kind == "vpce" and _VPCE.match(rest):
        return _console(partition, region, "vpcconsole/home", fragment=f"EndpointDetails:vpcEndpointId={rest}")
    if kind == "vpce-in":
        r, _ = regional(rest + ":")
        return _console(partition_of(r) or partition, r, "vpcconsole/home", fragment="Endpoints:")
    if kind == "rate":
        parts = rest.split(":")
        r = parts[1] if len(parts) > 1 and _REGION.match(parts[1]) else region
        service = parts[2] if len(parts) > 2 and parts[2] in ("kms", "secretsmanager") else ""
        if service:
            return _console(partition_of(r) or partition, r, f"servicequotas/home/services/{service}/quotas")
        return cloudtrail_link(r, partition=partition_of(r) or partition)
    return cloudtrail_link(region, partition=partition)


def _resources(root: dict, region: str) -> list[str]:
    """The ARNs the event concerns (PutEvents ``Resources``): the root's own, when it is exactly one."""
    rid = root.get("id") if isinstance(root, dict) else ""
    if not isinstance(rid, str):
        return []
    kind, _, rest = rid.partition(":")
    if kind in ("key", "policy") and _ARN.match(rest) and len(rest) <= 1600:
        return [rest]
    if kind == "alias":
        parts = rest.split(":", 2)
        if len(parts) == 3 and _ACCOUNT.match(parts[0]) and _REGION.match(parts[1]) and parts[2].startswith("alias/"):
            partition = partition_of(parts[1]) or "aws"
            arn = f"arn:{partition}:kms:{parts[1]}:{parts[0]}:{parts[2]}"
            return [arn] if len(arn) <= 1600 else []
    return []


# --------------------------------------------------------------------------------------------
# What on-call tools receive (rendered for people: every text from the event sanitised)
# --------------------------------------------------------------------------------------------
def _clean(value: Any, limit: int) -> str:
    from .text import clean

    return clean(value, limit) if value not in (None, "") else ""


def _iso(value: Any) -> str:
    return value if isinstance(value, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)", value) else ""


def _change_sentence(change: Any) -> str:
    if not isinstance(change, dict) or not change.get("action"):
        return ""
    lead = f", {_clean(change.get('lead'), 40)} before the first failure" if change.get("lead") else ""
    return _clean(f"{change.get('action')} by {change.get('actor', '?')} at {change.get('event_time', '?')}{lead} "
                  f"(CloudTrail event {change.get('event_id', '?')})", 600)


def _affected(group: Any, most: int) -> dict:
    group = group if isinstance(group, dict) else {}
    listed = group.get("listed") if isinstance(group.get("listed"), list) else []
    count = group.get("count") if isinstance(group.get("count"), int) else len(listed)
    return {"count": count, "listed": [_clean(v, 200) for v in listed[:most]]}


def _links(links: dict, label: str, title: str) -> list[dict]:
    out = []
    if links.get("console"):
        out.append({"href": links["console"], "text": _clean(f"AWS console: {label}", 200) or "AWS console"})
    if links.get("troubleshooting"):
        out.append({"href": links["troubleshooting"], "text": _clean(f"Troubleshooting: {title}", 200) or "Troubleshooting"})
    return out


def pagerduty_event(status: str, incident: dict, finding: dict, links: dict, *, account: str = "", region: str = "") -> dict:
    """The PagerDuty Events API v2 alert event for a notice, without ``routing_key`` (the
    forwarder adds it): ``trigger`` on opened and updated, ``resolve`` on resolved, ``dedup_key``
    the incident id, so one PagerDuty alert follows one incident
    (https://developer.pagerduty.com/docs/events-api-v2/trigger-events/). Bounded: summary 1,024
    characters, dedup_key 255, custom details a few KB."""
    dedup = _text(incident.get("id"))[:255] or "unknown-incident"
    if status == Status.RESOLVED:
        return {"event_action": "resolve", "dedup_key": dedup}
    root = incident.get("root") if isinstance(incident.get("root"), dict) else {}
    label, title = _clean(root.get("label"), 300), _clean(incident.get("title") or finding.get("title"), 200)
    severity = _text(incident.get("severity") or finding.get("severity"))
    failures = incident.get("failures") if isinstance(incident.get("failures"), int) else 0
    summary = _clean(f"[{status.upper()}] {title or incident.get('cause') or 'failure'}: {label or '?'} "
                     f"({failures} failure{'s' if failures != 1 else ''})", 1024)
    payload = {
        "summary": summary,
        "source": _clean(f"{account or '?'}/{region or '?'}", 255),
        "severity": PAGERDUTY_SEVERITY.get(severity, "error"),
        "component": _clean(root.get("id"), 255) or "unknown",
        "group": _clean(root.get("kind"), 255) or "unknown",
        "class": _clean(incident.get("cause") or finding.get("cause"), 255) or "unknown",
        "custom_details": {
            "incident": dedup, "status": status, "occurrence": incident.get("occurrence") if isinstance(incident.get("occurrence"), int) else 1,
            "root": label, "failures": failures, "first_failure": _iso(incident.get("first_failure")),
            "last_failure": _iso(incident.get("last_failure")),
            "principals": _affected(incident.get("principals"), 10), "resources": _affected(incident.get("resources"), 10),
            "change": _change_sentence(incident.get("change")) or _clean(incident.get("searched"), 300),
            "remediation": _clean(incident.get("remediation"), 2000),
            "evidence": [_clean(e, 300) for e in (incident.get("evidence") or [])[:10]] if isinstance(incident.get("evidence"), list) else [],
            "account": _clean(account, 64), "region": _clean(region, 64),
        },
    }
    timestamp = _iso(incident.get("last_failure")) or _iso(incident.get("first_failure"))
    if timestamp:
        payload["timestamp"] = timestamp
    return {"event_action": "trigger", "dedup_key": dedup, "payload": payload, "links": _links(links, label, title),
            "client": CLIENT}


def opsgenie_request(status: str, incident: dict, finding: dict, links: dict, *, account: str = "", region: str = "") -> dict:
    """The Opsgenie Alert API request body for a notice: *create alert* (``POST /v2/alerts``) on
    opened and updated, with ``alias`` the incident id (Opsgenie keeps one open alert per alias
    and counts the repeats), *close alert* (``POST /v2/alerts/{alias}/close?identifierType=alias``)
    on resolved (https://docs.opsgenie.com/docs/alert-api). Within Opsgenie's limits: message 130
    characters, description 15,000 (4,000 here), tags 50 each, details 8,000 in all."""
    root = incident.get("root") if isinstance(incident.get("root"), dict) else {}
    label, title = _clean(root.get("label"), 300), _clean(incident.get("title") or finding.get("title"), 200)
    failures = incident.get("failures") if isinstance(incident.get("failures"), int) else 0
    source = IncidentEvent.SOURCE[:100]
    if status == Status.RESOLVED:
        seconds = incident.get("open_seconds")
        after = f", open {seconds // 60} min" if isinstance(seconds, int) and seconds >= 0 else ""
        return {"source": source, "user": "auditor",
                "note": _clean(f"Resolved by the auditor: no failure for the quiet period; {failures} failure(s){after}.", 1000)}
    severity = _text(incident.get("severity") or finding.get("severity"))
    principals, resources = _affected(incident.get("principals"), 10), _affected(incident.get("resources"), 10)
    change = _change_sentence(incident.get("change"))
    lines = [
        f"Status: {status} (occurrence {incident.get('occurrence', 1)}), {failures} failure(s) since "
        f"{_iso(incident.get('first_failure')) or '?'}, last at {_iso(incident.get('last_failure')) or '?'}",
        f"Root: {label}",
        f"Principals: {principals['count']}: {', '.join(principals['listed'])}",
        f"Resources: {resources['count']}: {', '.join(resources['listed'])}",
        f"Changed: {change}" if change else f"Changed: nothing recorded. Searched: {_clean(incident.get('searched'), 300)}",
        f"Remediation: {_clean(incident.get('remediation'), 1500)}",
    ]
    description = "\n".join(_clean(line, 1600) for line in lines)
    for name, url in (("Console", links.get("console")), ("Troubleshooting", links.get("troubleshooting"))):
        if url:
            description += f"\n{name}: {url}"  # ours: built from percent-encoded parts (not sanitised: a link)
    details = {
        "incident": _text(incident.get("id"))[:200], "status": status, "cause": _clean(incident.get("cause"), 100),
        "severity": _clean(severity, 16), "root": label, "failures": str(failures),
        "principals": str(principals["count"]), "resources": str(resources["count"]),
        "account": _clean(account, 64), "region": _clean(region, 64), "change": change[:500],
        "console": links.get("console", ""), "troubleshooting": links.get("troubleshooting", ""),
    }
    tags = [t for t in dict.fromkeys(("secrets-kms-auditor", _clean(incident.get("cause"), 50), _clean(severity, 50),
                                       _clean(root.get("kind"), 50))) if t]
    body = {
        "message": _clean(f"{title or incident.get('cause') or 'failure'}: {label or '?'}", 130),
        "alias": _text(incident.get("id"))[:512] or "unknown-incident",
        "description": description[:4000],
        "priority": OPSGENIE_PRIORITY.get(severity, "P3"),
        "entity": label[:512],
        "source": source,
        "tags": tags,
        "details": {k: v for k, v in details.items() if v},
    }
    if status == Status.UPDATED:
        body["note"] = _clean(f"Updated: {failures} failure(s), the last at {_iso(incident.get('last_failure')) or '?'}.", 1000)
    return body


def pagerduty_change_event(record: dict) -> Optional[dict]:
    """A PagerDuty change event (without ``routing_key``) for a CloudTrail record of a change the
    auditor watches (``contract.CHANGE_EVENTS``): what changed, on what, by whom, when, with a
    link to the CloudTrail event (https://developer.pagerduty.com/docs/events-api-v2/send-change-events/).
    Only identifiers are read from the record (never a policy document or a value); None for a
    record that is not such a change, or that touches nothing an incident can be rooted in."""
    from .changes import CHANGE_ACTIONS, parse_change

    if not isinstance(record, dict) or record.get("errorCode"):
        return None
    source, action = record.get("eventSource"), record.get("eventName")
    if not isinstance(source, str) or not isinstance(action, str) or action not in CHANGE_ACTIONS.get(source, ()):
        return None
    change = parse_change(record, source, action)
    if change is None:
        return None
    region = change.region if _REGION.match(change.region or "") else ""
    payload = {
        "summary": _clean(f"{change.summary} by {change.actor}", 1024),
        "source": _clean(f"{change.account or '?'}/{change.region or '?'}", 255),
        "custom_details": {
            "event_id": _clean(change.event_id, 128), "event_source": _clean(change.source, 128),
            "event_name": _clean(change.action, 128), "actor": _clean(change.actor, 512),
            "account": _clean(change.account, 64), "region": _clean(change.region, 64),
            "touches": [_clean(key, 300) for key, _ in change.keys[:10]],
        },
    }
    if _iso(change.event_time):
        payload["timestamp"] = change.event_time
    link = cloudtrail_link(region, event_id=change.event_id) if region else ""
    body = {"payload": payload}
    if link:
        body["links"] = [{"href": link, "text": "CloudTrail event"}]
    return body
