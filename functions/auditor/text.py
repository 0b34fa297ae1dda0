"""The one sanitiser for text that reaches people: ``clean(value, limit)``.

Every field of a finding that a person reads — the e-mail text and subject, the chat
payload, the sanitised JSON for ``email-json``, the message attributes — passes
``clean`` first; the chat's markdown escaping goes on top of it. Most of that text comes
from the CloudTrail record, which the caller controls (a secret id, ``userIdentity.type``,
the user agent, an error message that echoes the request), so it must neither change the
message's shape nor put a working link in front of the reader.

``clean`` does, in order:

1. **compatibility forms folded** (NFKC): full-width letters and dots (``ｅｖｉｌ．ｅｘａｍｐｌｅ``),
   the ideographic and small full stops, ``⒈`` ("1.") and the like become what a browser's
   host parser would make of them, so step 4 sees the dots a linkifier or browser sees;
2. **one line of printable text**: control, format (bidi overrides, zero-width characters),
   surrogate, private-use, unassigned and separator characters become a space, whitespace
   runs collapse to one space (no newline, so no injected e-mail line or header);
3. **defanged** — nothing a mail or chat client turns into a link survives:

   * a scheme (``https://``, ``ftp://``, any ``name://``; and ``mailto:``, ``javascript:``,
     ``data:``, ``tel:``, ... followed by text) loses its colon: ``hxxps[://]``,
     ``mailto[:]``;
   * a dot (``.`` or ``。``) followed by two letters (the start of a top-level domain: what a
     linkifier needs) becomes ``[.]``, so ``evil.example/x``, ``www.evil``, ``a.b.co/path`` and
     ``user@evil.example`` stop being links; so does the dot after ``www``. IP addresses and
     version numbers (digits after the dot) are left as they are;
   * except what is ours and must stay exact (``NOT_LINKS``): the AWS endpoints the catalog
     writes into a policy statement (``secretsmanager.us-east-1.amazonaws.com`` as
     ``kms:ViaService``, ``secretsmanager.amazonaws.com``; the same for ``kms``), the cause ids
     (``access-denied.kms-key``), and the CloudTrail field names the evidence quotes. Only the
     whole token counts: ``evil-bucket.s3.amazonaws.com``, ``secretsmanager.evil.example``,
     ``secretsmanager.amazonaws.com.evil.example``, ``x@secretsmanager.amazonaws.com`` or
     ``secretsmanager.amazonaws.com/path`` are defanged like any other host;

4. **bounded**: at most ``limit`` characters, a cut marked with "…" (and the head defanged
   again: a cut inside one of our endpoints would leave a host of someone else's).

The exact, unsanitised finding still goes to machines (the SNS ``default`` body for SQS,
Lambda and Firehose, the logs, the CLI): a dot in a name read from the event shows as ``[.]``
only where people read it.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from .causes import CATALOG

__all__ = ["DOC_URLS", "NOT_LINKS", "bound", "clean", "defang", "doc_link", "one_line"]

#: Our own documentation links (one per cause): the only links a message may carry.
DOC_URLS = frozenset(c.doc_url for c in CATALOG)
_DOC_URL = re.compile(r"https://docs\.aws\.amazon\.com/[A-Za-z0-9/_.#-]+")

#: Dotted tokens of our own that are not links and must read exactly: the cause ids (a public
#: contract: filter policies match them) and the CloudTrail field names the evidence quotes.
NOT_LINKS = frozenset({c.id for c in CATALOG if "." in c.id} | {"userIdentity.type", "userIdentity.invokedBy"})
#: The AWS endpoints the catalog writes (kms:ViaService in a policy statement, the service that
#: called KMS in the evidence): <service>.amazonaws.com and <service>.<region>.amazonaws.com.
_ENDPOINT = re.compile(r"(?:secretsmanager|kms)(?:\.[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2})?\.amazonaws\.com")

#: Schemes whose colon alone makes a link (no "//" needed), and any "ms-..." (Office) scheme.
_COLON_SCHEMES = frozenset(
    "http https ftp ftps sftp ws wss file mailto javascript vbscript livescript data tel sms mms callto skype "
    "sip sips xmpp im news nntp irc ircs ssh telnet gopher webcal magnet blob about facetime intent market "
    "slack msteams zoommtg itms-services".split()
)
# Two left-to-right scans. Schemes first, wherever their name starts (after a dot too:
# "x.https:" is a scheme to a reader), then host-like tokens (labels joined by dots) and "www.".
# Each alternative starts only where its run of characters starts and takes it whole
# (possessive), so the scans stay linear however long a run the event carries.
_SCHEMES = re.compile(
    r"(?<![A-Za-z0-9+\-])(?P<scheme>[A-Za-z][A-Za-z0-9+\-]*+):(?P<slashes>[/\\]{2,}+)?"
    r"|(?<!\[):(?P<sep>[/\\]{2,}+)"  # "://" after anything else ("1x://", "a_b://"); not our own "[://]"
)
_HOSTS = re.compile(
    r"(?<![\w.。-])(?P<www>(?i:www))[.。]"  # "www." makes a link whatever follows
    r"|(?<![\w-])(?P<host>[\w-]++(?:[.。][\w-]++)+)"
)
_DOTS = re.compile(r"[.。]")


def one_line(value: Any, limit: int = 300) -> str:
    """Steps 2 and 3: one line of printable text (control, format and separator characters
    become spaces, whitespace collapsed), at most ``limit`` characters."""
    text = value if isinstance(value, str) else "" if value is None else str(value)
    text = text[: limit * 2]
    if not (text.isascii() and text.isprintable()):  # printable ASCII (most text) has nothing to drop
        text = "".join(ch if unicodedata.category(ch)[0] not in "CZ" or ch == " " else " " for ch in text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _letters_follow(text: str, at: int) -> bool:
    """Whether the label after the dot at ``at`` starts with two letters (a top-level domain could)."""
    count = 0
    for ch in text[at + 1 : at + 40]:
        if ch.isalpha():
            count += 1
            if count == 2:
                return True
        elif unicodedata.category(ch)[0] != "M":  # combining marks ride on the letter before
            return False
    return False


def _ours(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] is an endpoint or id of ours standing alone (no host, path,
    user or port around it that would make it part of someone else's link)."""
    token = text[start:end]
    if token in NOT_LINKS:  # no top-level domain is named like these: not a link, whatever surrounds it
        return True
    if not _ENDPOINT.fullmatch(token):
        return False
    before = text[start - 1] if start else " "
    after = text[end] if end < len(text) else " "
    return before not in "@/\\:.。%" and after not in "@/\\:?#%" and unicodedata.category(after)[0] != "M"


def _defang_scheme(m: re.Match) -> str:
    name = m.group("scheme")
    if name is None:
        return "[:" + m.group("sep") + "]"
    if m.group("slashes"):
        return _scheme(name) + "[:" + m.group("slashes") + "]"
    low = name.lower()
    if low in _COLON_SCHEMES or low.startswith("ms-"):  # "mailto:x", "javascript:x"; also at the end: markup may follow
        after = m.string[m.end() : m.end() + 1]
        if not after or not after.isspace():
            return _scheme(name) + "[:]"
    return m.group(0)


def _defang_hosts(m: re.Match) -> str:
    if m.group("www") is not None:
        return m.group("www") + "[.]"
    return _defang_host(m)


def _defang_host(m: re.Match) -> str:
    token, text, start = m.group(0), m.string, m.start()
    if _ours(text, start, m.end()):
        return token
    out, last = [], 0
    for dot in _DOTS.finditer(token):
        at = dot.start()
        if _letters_follow(text, start + at) or token[at - 3 : at].lower() == "www":
            out.append(token[last:at] + "[.]")
            last = at + 1
    return "".join(out) + token[last:] if out else token


def _scheme(name: str) -> str:
    low = name.lower()
    if low in ("http", "https"):
        return name[0] + ("XX" if name[1].isupper() else "xx") + name[3:]
    if low in ("ftp", "ftps"):
        return name[0] + ("X" if name[1].isupper() else "x") + name[2:]
    return name


def defang(text: str) -> str:
    """Step 4: no scheme, host, ``www.`` or e-mail address stays a link (see the module doc)."""
    if ":" in text:
        text = _SCHEMES.sub(_defang_scheme, text)
    if "." in text or "。" in text:
        text = _HOSTS.sub(_defang_hosts, text)
    return text


def clean(value: Any, limit: int = 300) -> str:
    """The sanitiser: compatibility forms folded, one printable line, defanged, at most ``limit`` characters."""
    text = value if isinstance(value, str) else "" if value is None else str(value)
    if text.isascii():
        if len(text) <= limit and text.isprintable() and "  " not in text and text.strip() == text:
            return bound(defang(text), limit)  # one printable line already (most fields): nothing to fold or drop
    else:
        text = unicodedata.normalize("NFKC", text[: limit * 2])  # may grow (one character can fold to 18)
    return bound(defang(one_line(text, limit * 2)), limit)


def bound(text: str, limit: int, mark: str = "…") -> str:
    """Defanged text cut to at most ``limit`` characters, ending in ``mark`` when cut. A cut can
    make a link of what was none (``secretsmanager.us-east-1.amazonaws.com`` cut after ``.am``,
    ``access-denied.kms-key`` after ``.km``): the head is defanged again."""
    if len(text) <= limit:
        return text
    cut = limit - len(mark)
    while True:
        head = defang(text[:cut])
        if len(head) <= limit - len(mark):
            return head + mark
        cut -= len(head) - (limit - len(mark))


def doc_link(url: Any) -> str:
    """Our documentation URL as a link when it is one of the catalog's, else "" (never trust the field)."""
    return url if isinstance(url, str) and url in DOC_URLS and _DOC_URL.fullmatch(url) else ""
