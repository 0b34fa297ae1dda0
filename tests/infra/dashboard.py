"""Reading what a synthesized template watches: the dashboard's widgets (DashboardBody is an
Fn::Join of strings and tokens), their metrics and SEARCH expressions, the alarms' metrics, and
the fields the Logs Insights queries read."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from .conftest import resources


@dataclass(frozen=True)
class Watched:
    """One custom metric the template reads: where, and with which dimensions.

    ``dimensions`` maps each dimension name to its value, or to None where any value is read
    (a SEARCH schema names the dimensions without values)."""

    where: str  # "alarm <logical id>" or "widget <title>"
    namespace: str
    name: str
    dimensions: tuple[tuple[str, str | None], ...]
    exact: bool = True  # the metric must have exactly these dimensions (a SEARCH schema, a metric's own)


def widgets(template: dict) -> dict[str, dict]:
    """Title -> widget, with every CloudFormation token replaced by a JSON-string-safe placeholder."""
    (dashboard,) = resources(template, "AWS::CloudWatch::Dashboard").values()
    body = dashboard["Properties"]["DashboardBody"]
    parts = body["Fn::Join"][1] if isinstance(body, dict) else [body]
    text = "".join(p if isinstance(p, str) else "TOKEN" + re.sub(r"\W", "_", json.dumps(p, sort_keys=True)) for p in parts)
    parsed = json.loads(text)
    return {w["properties"].get("title", f"untitled-{i}"): w for i, w in enumerate(parsed["widgets"])}


def metric_rows(widget: dict) -> list[list]:
    return widget["properties"].get("metrics", [])


def expressions(widget: dict) -> list[str]:
    return [row[0]["expression"] for row in metric_rows(widget) if row and isinstance(row[0], dict) and "expression" in row[0]]


_SEARCH = re.compile(r"SEARCH\(\s*'(?P<query>[^']*)'\s*,\s*'(?P<stat>\w+)'\s*,\s*(?P<period>\d+)\s*\)")
_TERM = re.compile(r'(?P<key>[A-Za-z_][\w.-]*)\s*=\s*"(?P<value>[^"]*)"')


def parse_search(expression: str) -> list[tuple[str, str, dict[str, str | None]]]:
    """(namespace, metric name, {dimension: value or None}) of every SEARCH in ``expression``.

    Supports the form the stack writes: SEARCH('{Namespace,dim1,dim2} MetricName="X" dim1="v"', 'Sum', 300).
    Raises on any other form, so a new kind of expression is noticed rather than skipped."""
    found = []
    for match in _SEARCH.finditer(expression):
        query = match.group("query")
        schema = re.match(r"\s*\{(?P<schema>[^}]*)\}\s*(?P<rest>.*)$", query)
        if schema is None:
            raise ValueError(f"SEARCH without a {{namespace,dimensions}} schema: {expression}")
        namespace, *keys = [part.strip() for part in schema.group("schema").split(",")]
        dimensions: dict[str, str | None] = dict.fromkeys(keys)
        name = None
        rest = schema.group("rest")
        for term in _TERM.finditer(rest):
            if term.group("key") == "MetricName":
                name = term.group("value")
            elif term.group("key") in dimensions:
                dimensions[term.group("key")] = term.group("value")
            else:
                raise ValueError(f"SEARCH filters on {term.group('key')!r}, which its schema does not name: {expression}")
        leftover = _TERM.sub("", rest).strip()
        if name is None or leftover:
            raise ValueError(f"SEARCH needs exactly MetricName=\"...\" and dimension filters: {expression}")
        found.append((namespace, name, dimensions))
    if "SEARCH(" in expression and not found:
        raise ValueError(f"unparsed SEARCH expression: {expression}")
    return found


def _row_metric(row: list) -> tuple[str, str, dict[str, str]] | None:
    """A widget row [namespace, name, dim, value, ..., {options}] (CDK writes "." for "same as above": not here)."""
    values = [x for x in row if not isinstance(x, dict)]
    if len(values) < 2:
        return None
    namespace, name, *dims = values
    return namespace, name, dict(zip(dims[::2], dims[1::2]))


def watched_metrics(template: dict, namespace_prefix: str = "") -> list[Watched]:
    """Every metric the template's alarms and dashboard read, SEARCH expressions included."""
    out: list[Watched] = []
    for logical_id, alarm in resources(template, "AWS::CloudWatch::Alarm").items():
        props = alarm["Properties"]
        if "MetricName" in props:
            dims = {d["Name"]: d["Value"] for d in props.get("Dimensions", [])}
            out.append(Watched(f"alarm {logical_id}", props["Namespace"], props["MetricName"], tuple(sorted(dims.items()))))
        for query in props.get("Metrics", []):
            if "MetricStat" in query:
                metric = query["MetricStat"]["Metric"]
                dims = {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}
                out.append(Watched(f"alarm {logical_id}", metric["Namespace"], metric["MetricName"], tuple(sorted(dims.items()))))
            if "Expression" in query:
                for namespace, name, dims in parse_search(query["Expression"]):
                    out.append(Watched(f"alarm {logical_id}", namespace, name, tuple(sorted(dims.items()))))
    for title, widget in widgets(template).items():
        for row in metric_rows(widget):
            if row and isinstance(row[0], dict) and "expression" in row[0]:
                for namespace, name, dims in parse_search(row[0]["expression"]):
                    out.append(Watched(f"widget {title}", namespace, name, tuple(sorted(dims.items()))))
                continue
            metric = _row_metric(row)
            if metric is not None:
                namespace, name, dims = metric
                out.append(Watched(f"widget {title}", namespace, name, tuple(sorted(dims.items()))))
    return [w for w in out if w.namespace.startswith(namespace_prefix)]


def log_queries(template: dict) -> dict[str, str]:
    """Title -> query of every Logs Insights widget (without its SOURCE prefix)."""
    out = {}
    for title, widget in widgets(template).items():
        if widget["type"] == "log":
            out[title] = widget["properties"]["query"].split("|", 1)[1] if widget["properties"]["query"].startswith("SOURCE") \
                else widget["properties"]["query"]
    return out


_FIELD = re.compile(r"(?<![\w.@'\"])([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)(?![\w(])")
_STRING = re.compile(r"'[^']*'|\"[^\"]*\"")
#: Logs Insights words that are not fields.
KEYWORDS = {"fields", "filter", "stats", "sort", "limit", "by", "as", "and", "or", "not", "in", "like", "desc", "asc",
            "count", "display", "parse", "dedup"}


def query_fields(query: str) -> set[str]:
    """The log fields a query reads (dotted paths included; @-fields, keywords, aliases and
    string literals excluded)."""
    aliases = set(re.findall(r"\bas\s+([A-Za-z_]\w*)", query))
    without_strings = _STRING.sub(" ", query)
    names = set(_FIELD.findall(without_strings))
    return {n for n in names if n not in KEYWORDS and n not in aliases and not n.isdigit()}


def query_comparisons(query: str) -> list[tuple[str, str, list[str]]]:
    """(field, operator, values) of every ``field = 'v'``, ``field != 'v'``, ``field in [...]``
    and ``field not in [...]`` in the query."""
    out = []
    for field, op, value in re.findall(r"([A-Za-z_][\w.]*)\s*(=|!=)\s*'([^']*)'", query):
        out.append((field, op, [value]))
    for field, op, values in re.findall(r"([A-Za-z_][\w.]*)\s+(not in|in)\s+\[([^\]]*)\]", query):
        out.append((field, op, [a or b for a, b in re.findall(r"'([^']*)'|\"([^\"]*)\"", values)]))
    return out
