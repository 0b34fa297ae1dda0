"""Access-denied messages -> ``Denial``: which policy type refused, explicitly or not, the
action and resource the message names, and the denying policy's ARN when AWS includes it.

One job: read IAM's (and KMS's, and CloudTrail network activity events') access-denied
wording. Pure string scanning, memoised: this runs for every denial, and the phrases are
fixed by IAM. ``auditor.records`` calls it while it turns a record into a ``FailedCall``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

__all__ = ["ACCESS_DENIED_CODES", "Denial", "parse_denial"]


#: Error codes that mean "the authorization check said no". VpceAccessDenied: a CloudTrail network
#: activity event of a call the VPC endpoint's policy refused (the only error code those events carry:
#: https://docs.aws.amazon.com/awscloudtrail/latest/userguide/logging-network-events-with-cloudtrail.html).
ACCESS_DENIED_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "Client.UnauthorizedOperation", "VpceAccessDenied"}
)

#: Policy-type phrases as they appear (lower-cased) after "explicit deny in a" / "because no",
#: with the canonical name. Order matters: longer phrases first.
_TYPE_PHRASES = (
    ("identity-based", "identity-based"),
    ("identity based", "identity-based"),
    ("resource-based", "resource-based"),
    ("resource based", "resource-based"),
    ("service control", "service control"),
    ("resource control", "resource control"),
    ("permissions boundary", "permissions boundary"),
    ("permission boundary", "permissions boundary"),
    ("session", "session"),
    ("vpc endpoint", "vpc endpoint"),
)

#: _TYPE_PHRASES by their first four characters (no two groups share them), in the same order.
_PHRASES_BY_HEAD: dict[str, tuple[tuple[str, str], ...]] = {}
for _phrase in _TYPE_PHRASES:
    _PHRASES_BY_HEAD[_phrase[0][:4]] = _PHRASES_BY_HEAD.get(_phrase[0][:4], ()) + (_phrase,)
del _phrase


@dataclass(frozen=True, slots=True)  # frozen: parse_denial hands the same one to every call with its message
class Denial:
    """What an access-denied message says: which policy type, explicit or implicit."""

    policy_type: str  # identity-based, resource-based, service control, resource control,
    #                   permissions boundary, session, vpc endpoint; "" when the message does not say
    explicit: bool
    action: str  # e.g. "kms:Decrypt", as the message names it ("" if absent)
    resource: str
    policy_arn: str  # the denying policy's ARN when AWS includes it
    #: KMS would not say which of several reasons applies ("the resource does not exist in this
    #: Region, no resource-based policies allow access, or a resource-based policy explicitly denies access")
    hedged: bool = False


_CALLER_SAYS = " is not authorized to perform"


def parse_denial(message: str) -> Denial:
    """Read policy type, explicitness, action and resource out of an access-denied message.

    IAM's form is "User: <caller ARN> is not authorized to perform: ...". The caller's ARN differs
    with every session name, and nothing read here can lie in it or start in it (every phrase
    looked for holds a space, the ARN none, and none starts like the text after it), so the
    message from the space after it on is read (and memoised) instead: same Denial.
    """
    if message.startswith("User: "):
        cut = message.find(" ", 6)
        if cut > 0 and message.startswith(_CALLER_SAYS, cut):
            return _parse_denial(message[cut:])
    return _parse_denial(message)


# Memoised: the same caller denied the same action on the same resource repeats its message until
# someone fixes it. Bounded: messages come from the records (and are at most MAX_MESSAGE long: 4096
# of them hold at most a few MB). 4096, not 1024: a stream's distinct denials (an action on a
# resource) outnumber 1024 soon (1,102 in the bench's 100,000 records), and an LRU cache smaller
# than what cycles through it misses on nearly every one.
@functools.lru_cache(maxsize=4096)
def _parse_denial(message: str) -> Denial:
    """parse_denial, of the message as given.

    Plain string scanning rather than regular expressions: this runs for every denial, and
    the phrases are fixed by IAM.
    """
    policy_type, explicit, policy_arn, hedged = "", False, "", False
    # Fixed phrases, matched without lower-casing the whole message ("Explicit"/"explicit" both end in "xplicit").
    at = message.find("xplicit deny")
    if at >= 0:
        # "with an explicit deny in a(n) <type> policy[: <arn>]", or, in older messages, just
        # "with an explicit deny" (explicit, type unnamed).
        explicit = True
        if message.startswith(" in ", at + 12):
            policy_type = _policy_type(_without_article(message[at + 16 : at + 80].lower()))
            # "...in a VPC endpoint policy transitively through a service control policy": IAM's
            # guide says to look for the Deny in the SCP, so the type after "through" is the one to fix.
            through = message.find("transitively through ", at)
            if through >= 0:
                policy_type = _policy_type(_without_article(message[through + 21 : through + 80].lower())) or policy_type
            arn_at = message.find("arn:", at)
            if policy_type and arn_at >= 0 and message[at:arn_at].count(" ") <= 8:
                policy_arn = message[arn_at:].split(None, 1)[0].rstrip(".,;)")
    else:
        at = message.find("ecause no ")
        if at >= 0:
            text = message[at + 10 : at + 60].lower()
            for phrase, canonical in _PHRASES_BY_HEAD.get(text[:4], ()):  # _policy_type(text), inline
                if text.startswith(phrase):
                    policy_type = canonical
                    break
        elif "no resource-based policies allow" in message:
            # KMS, when it cannot tell which: "... because the resource does not exist in this Region,
            # no resource-based policies allow access, or a resource-based policy explicitly denies access"
            policy_type, hedged = "resource-based", True
        elif "due to a VPC endpoint policy" in message:
            # A network activity event: "The request was denied due to a VPC endpoint policy" (whether
            # explicitly or for want of an Allow, it does not say; nor which action or resource).
            policy_type = "vpc endpoint"
    action = resource = ""
    at = message.find("not authorized to perform")
    if at >= 0:
        words = message[at + 25 :].lstrip(": ").split(None, 4)
        if words and ":" in words[0]:
            action = words[0]
            if len(words) >= 3 and words[1] == "on" and words[2].startswith("resource"):
                target = words[3] if words[2] in ("resource:", "resource") and len(words) > 3 else ""
                resource = target.strip('"').rstrip(".,;")
    return Denial(policy_type, explicit, action, resource, policy_arn, hedged)


def _without_article(text: str) -> str:
    for article in ("a ", "an ", "the "):
        if text.startswith(article):
            return text[len(article) :]
    return text


def _policy_type(text: str) -> str:
    for phrase, canonical in _PHRASES_BY_HEAD.get(text[:4], ()):
        if text.startswith(phrase):
            return canonical
    return ""
