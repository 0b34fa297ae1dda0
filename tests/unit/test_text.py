"""The one sanitiser (auditor.text.clean): one printable line, bounded, no link left alive,
and what is ours (the catalog's AWS endpoints, the cause ids, our documentation URLs) intact."""

from __future__ import annotations

import time
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.causes import CATALOG
from auditor.text import clean, defang, doc_link, one_line

from .linkify import live_links

DEFANGED = [
    # the case: a secret id chosen by the caller
    ("https://evil.example/reset-password", "hxxps[://]evil[.]example/reset-password"),
    ("HTTP://EVIL.EXAMPLE", "HXXP[://]EVIL[.]EXAMPLE"),
    ("ftp://evil.example/x", "fxp[://]evil[.]example/x"),
    ("custom+scheme://evil.example", "custom+scheme[://]evil[.]example"),
    ("1x://a", "1x[://]a"),
    ("https:\\\\evil.example", "hxxps[:\\\\]evil[.]example"),
    ("https:/evil.example", "hxxps[:]/evil[.]example"),
    ("mailto:victim@evil.example", "mailto[:]victim@evil[.]example"),
    ("JaVaScRiPt:alert(1)", "JaVaScRiPt[:]alert(1)"),
    ("data:text/html;base64,PHNjcmlwdD4=", "data[:]text/html;base64,PHNjcmlwdD4="),
    ("www.evil and WWW.x", "www[.]evil and WWW[.]x"),
    ("evil.example", "evil[.]example"),
    ("a.b.co/path", "a.b[.]co/path"),
    ("victim@example.com", "victim@example[.]com"),
    ("evil.example://x", "evil[.]example[://]x"),
    # the dots a browser's host parser folds to "." (UTS 46 / NFKC)
    ("ｅｖｉｌ．ｅｘａｍｐｌｅ", "evil[.]example"),
    ("evil。example", "evil[.]example"),
    ("evil｡example", "evil[.]example"),
    ("evil․example", "evil[.]example"),
    ("evil﹒example", "evil[.]example"),
    ("evil⒈com", "evil1[.]com"),
    ("xn--80ak6aa92e.com", "xn--80ak6aa92e[.]com"),
    ("evil.com™", "evil[.]comTM"),
    # lookalikes of our endpoints are anybody's
    ("evil-bucket.s3.amazonaws.com", "evil-bucket.s3[.]amazonaws[.]com"),
    ("s3.amazonaws.com/evil-bucket/page.html", "s3[.]amazonaws[.]com/evil-bucket/page[.]html"),
    ("secretsmanager.evil.example", "secretsmanager[.]evil[.]example"),
    ("secretsmanager.amazonaws.com.evil.example", "secretsmanager[.]amazonaws[.]com[.]evil[.]example"),
    ("secretsmanager.us-east-1.evil.amazonaws.com", "secretsmanager[.]us-east-1[.]evil[.]amazonaws[.]com"),
    ("x@secretsmanager.amazonaws.com", "x@secretsmanager[.]amazonaws[.]com"),
    ("secretsmanager.amazonaws.com/path", "secretsmanager[.]amazonaws[.]com/path"),
    ("secretsmanager.us-east-1.amazonaws.com:443", "secretsmanager[.]us-east-1[.]amazonaws[.]com:443"),
    ("https://secretsmanager.us-east-1.amazonaws.com", "hxxps[://]secretsmanager.us-east-1.amazonaws.com"),  # AWS's, bare
    ("x.https:/evil.example", "x[.]hxxps[:]/evil[.]example"),
    ("xsecretsmanager.amazonaws.com", "xsecretsmanager[.]amazonaws[.]com"),
    ("access-denied.kms-key.evil.example", "access-denied[.]kms-key[.]evil[.]example"),
    # one line, nothing invisible
    ("line one\r\nBcc: victim@evil.example", "line one Bcc: victim@evil[.]example"),
    ("AssumedRole\nX-Injected: yes", "AssumedRole X-Injected: yes"),
    ("\u202etxt.exe\u200b\x00\x07\x1b[31m", "txt[.]exe [31m"),
]

KEPT = [
    # ours: pasteable endpoints (kms:ViaService), cause ids, the CloudTrail fields the evidence names
    "secretsmanager.us-east-1.amazonaws.com",
    "secretsmanager.us-gov-west-1.amazonaws.com",
    "kms.eu-central-1.amazonaws.com",
    "the KMS call came from secretsmanager.amazonaws.com.",
    '{"StringEquals": {"kms:ViaService": "secretsmanager.ap-southeast-2.amazonaws.com"}}',
    "Cause: access-denied.kms-key (confidence high)",
    "[HIGH] rotation.failed: secretsmanager:RotateSecret",
    "userIdentity.type is AssumedRole; userIdentity.invokedBy",
    # not links: IP addresses, versions, ARNs without a dotted name, abbreviations
    "from 203.0.113.7 with botocore/1.34.0",
    "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    "kms:Decrypt on aws:SourceArn",
    "e.g. a role; i.e. no",
]


@pytest.mark.parametrize("raw,expected", DEFANGED)
def test_links_of_every_form_are_defanged(raw, expected):
    assert clean(raw) == expected
    assert live_links(clean(raw)) == []
    assert live_links(raw) != [] or "\n" in raw or "\x00" in raw or raw.startswith("\u202e")  # the checker sees them


@pytest.mark.parametrize("text", KEPT)
def test_what_is_ours_or_no_link_stays_exact(text):
    assert clean(text) == text
    assert live_links(text) == []


def test_every_cause_id_and_catalog_url_survives():
    for cause in CATALOG:
        assert clean(cause.id) == cause.id
        assert doc_link(cause.doc_url) == cause.doc_url
        assert cause.doc_url.startswith("https://docs.aws.amazon.com/")


def test_doc_link_trusts_only_the_catalog():
    for url in ["https://evil.example/", "https://docs.aws.amazon.com.evil.example/x",
                "https://docs.aws.amazon.com/x|<https://evil.example>", "", None, 42]:
        assert doc_link(url) == ""


def test_every_character_that_folds_to_a_dot_is_defanged():
    """Scan all of Unicode for characters whose compatibility form holds a dot: none may carry a host."""
    for cp in range(0x110000):
        ch = chr(cp)
        if 0xD800 <= cp < 0xE000:
            continue
        folded = unicodedata.normalize("NFKC", ch)
        if "." in folded or "。" in folded:
            out = clean(f"evil{ch}example/x")
            assert live_links(out) == [], (hex(cp), out)


def test_defang_is_idempotent_and_clean_is_bounded():
    for raw, _ in DEFANGED:
        once = clean(raw)
        assert defang(once) == once and clean(once) == once
    for text in ("a.bc " * 60, "a.bc" * 75, "x" * 299 + ".com", "é.bc" * 75):  # defanging lengthens: still bounded
        assert len(clean(text, 300)) <= 300 and live_links(clean(text, 300)) == []
    huge = "https://evil.example/" + "a." * 100_000 + "\n" * 1000
    out = clean(huge, 300)
    assert len(out) <= 300 and live_links(out) == [] and "\n" not in out


def test_long_runs_are_cleaned_in_linear_time():
    """A field of one long run (no spaces, no dots) must not make the scan quadratic."""
    runs = ["a" * 3000, "a." * 1500, "a-" * 1500, "a:" * 1500, "ab" * 1500 + "://", "\u00e9" * 3000]
    started = time.perf_counter()
    for run in runs * 5:
        clean(run, 1500)
    assert time.perf_counter() - started < 2.0


@given(st.text(max_size=400))
@settings(max_examples=400, deadline=None)
def test_one_line_drops_the_same_characters_whatever_the_text(text):
    """``one_line`` skips its per-character scan for printable ASCII: the result must be the one
    the scan gives (no control, format or separator character; whitespace collapsed; bounded)."""
    scanned = "".join(ch if unicodedata.category(ch)[0] not in "CZ" or ch == " " else " " for ch in text[:200])
    expected = " ".join(scanned.split())
    expected = expected if len(expected) <= 100 else expected[:99] + "…"
    assert one_line(text, 100) == expected
    assert one_line(text + "\u202e\x1b[31m\n", 100) == one_line(text + "   [31m", 100)


@given(st.text(max_size=300))
@settings(max_examples=400, deadline=None)
def test_clean_leaves_one_printable_bounded_line_without_links(text):
    out = clean(text, 120)
    assert len(out) <= 120
    assert all(unicodedata.category(ch)[0] not in "CZ" or ch == " " for ch in out)
    assert out == out.strip() and "  " not in out
    assert live_links(out) == []
