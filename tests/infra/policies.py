"""Reading policy statements out of a synthesized template, wherever they live: identity
policies, key policies, queue/topic/bucket policies, assume-role documents."""

from __future__ import annotations

import json
from fnmatch import fnmatchcase
from typing import Iterator

#: Resource types whose statements are identity policies (no Principal).
IDENTITY_TYPES = ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")


def as_list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def every_statement(template: dict) -> Iterator[tuple[str, str, dict]]:
    """(logical id, resource type, statement) for every policy statement in the template."""

    def walk(node) -> Iterator[dict]:
        if isinstance(node, dict):
            if isinstance(node.get("Statement"), list):
                yield from node["Statement"]
                return
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    for logical_id, resource in template["Resources"].items():
        for statement in walk(resource.get("Properties", {})):
            yield logical_id, resource["Type"], statement


def identity_statements(template: dict) -> list[dict]:
    """Statements of IAM policies (standalone and inline in roles): what principals of ours may do."""
    out = []
    for _, kind, statement in every_statement(template):
        if kind in IDENTITY_TYPES:
            out.append(statement)
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::IAM::Role":
            for policy in resource["Properties"].get("Policies", []):
                out += policy["PolicyDocument"]["Statement"]
    return out


def role_statements(template: dict, role_logical_id: str) -> list[dict]:
    """Every identity statement attached to one role (inline or via AWS::IAM::Policy)."""
    out = []
    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::IAM::Policy" and {"Ref": role_logical_id} in props.get("Roles", []):
            out += props["PolicyDocument"]["Statement"]
    role = template["Resources"][role_logical_id]["Properties"]
    for policy in role.get("Policies", []):
        out += policy["PolicyDocument"]["Statement"]
    return out


def actions(statement: dict) -> list[str]:
    return as_list(statement.get("Action"))


def grants(pattern: str, action: str) -> bool:
    """Whether an IAM action pattern (``kms:Get*``) covers a concrete action (IAM matching is case-insensitive)."""
    return fnmatchcase(action.lower(), pattern.lower())


def text(value) -> str:
    return json.dumps(value, sort_keys=True)


def render(value) -> str:
    """A CloudFormation string value as text, pseudo parameters and references as ${Name}:
    {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ...]]} -> "arn:${AWS::Partition}..."."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        (fn, arg), = value.items()
        if fn == "Ref":
            return "${" + arg + "}"
        if fn == "Fn::Join":
            return arg[0].join(render(part) for part in arg[1])
        if fn == "Fn::Sub" and isinstance(arg, str):
            return arg
        if fn == "Fn::GetAtt":
            return "${" + ".".join(arg) + "}"
    raise ValueError(f"cannot render {value!r}")
