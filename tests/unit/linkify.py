"""A linkifier's eye: what a mail or chat client would turn into a link.

Written apart from ``auditor.text`` on purpose (a second opinion, not a copy): the text is
folded the way a browser's host parser folds it (NFKC: full-width dots and letters, ``⒈``),
then anything that looks like a scheme, a ``www.`` host, or a host or e-mail address with a
top-level domain (a dot followed by two letters) is a link. What is ours is not: the exact
AWS endpoints the catalog writes into policy statements, standing alone, the cause ids, and
the catalog's documentation URLs where a test allows them.
"""

from __future__ import annotations

import re
import unicodedata

from auditor.causes import CATALOG

# any scheme with "//"; browsers also read "\\" as "/" after the special schemes
SCHEME = re.compile(r"(?i)[a-z][a-z0-9+.\-]*://|(?:https?|ftps?|wss?|file):[/\\]{2}")
COLON_SCHEME = re.compile(r"(?i)(?<![a-z0-9+\-])(?:https?|ftps?|file|mailto|javascript|vbscript|data|tel|sms):(?=\S)")
WWW = re.compile(r"(?i)(?<![\w.\-])www[.。]")
HOST = re.compile(r"[\w-]+(?:[.。][\w-]+)+")  # labels joined by dots
TLD = re.compile(r"[.。][^\W\d_]{2}")  # a dot a top-level domain could follow (two letters)
ENDPOINT = re.compile(r"(secretsmanager|kms)(\.[a-z]{2}(-[a-z]+)+-\d+)?\.amazonaws\.com")
IDS = {c.id for c in CATALOG} | {"userIdentity.type", "userIdentity.invokedBy"}
DOC_URLS = {c.doc_url for c in CATALOG}


def live_links(text: str, allow_docs: bool = False) -> list[str]:
    """Every piece of ``text`` a linkifier would make a link of (empty: none)."""
    # "…" is the sanitiser's cut mark: every one that came with the event was folded to "..." and
    # judged as such; no linkifier reads the mark as three dots ("www…" is no link).
    text = unicodedata.normalize("NFKC", text.replace("\u2026", " "))
    if allow_docs:
        for url in DOC_URLS:
            text = text.replace(url, " ")
    found = [m.group(0) for m in SCHEME.finditer(text)]
    found += [m.group(0) for m in COLON_SCHEME.finditer(text)]
    found += [text[max(0, m.start() - 5): m.end() + 10] for m in WWW.finditer(text)]
    for m in HOST.finditer(text):
        # markdown emphasis around it ("_secretsmanager.amazonaws.com_", "_.evil_") is not part of a host
        token = m.group(0).strip("_").lstrip(".。")
        if not TLD.search(token) or token in IDS:
            continue
        before = text[m.start() - 1] if m.start() else " "
        after = text[m.end()] if m.end() < len(text) else " "
        # (a backslash around it is JSON escaping a quote, not a path: JSON bodies are checked as sent)
        if ENDPOINT.fullmatch(token) and before not in "@/:%" and after not in "/:@?#%":
            continue
        found.append(text[max(0, m.start() - 10): m.end() + 10])
    return found
