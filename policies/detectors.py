"""Content detectors for privacy routing: does a request's text hold data that must stay local?

Pure functions over text; each names what it found, never returns the matched text (the
decision header and the request log say which detector, not what it saw).

- `email`: `name@domain.tld`.
- `phone`: international (`+CC ...`) or 10-15 digit numbers in groups (dates excluded).
- `payment_card`: 13-19 digit card numbers, spaces or dashes allowed, passing the Luhn check.
- `iban`: IBANs, spaced or not, passing the ISO 13616 mod-97 check and the country's length.
- `national_id`: US SSNs (`123-45-6789`, reserved ranges excluded) and UK NINOs
  (`AB 12 34 56 C`).
- `secret`: API keys and tokens with known prefixes (`sk-`, `sk-ant-`, `ghp_`, `github_pat_`,
  `xox?-`, `AKIA`, `AIza`, `glpat-`), JWTs, PEM private keys, and long random-looking tokens
  (32+ characters with digits, lower and upper case, over 4 bits of entropy a character).

`scan(text, names)` returns the names of the detectors that find something. Their precision
and recall on a labelled set of true positives and hard negatives, and their cost per request,
are measured by `benchmarks/privacy_detectors.py`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable

__all__ = ["DETECTORS", "scan"]

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,5}(?:[ .-]\d{2,8}){1,4}(?![\w-])"
)
_CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
_SSN = re.compile(r"(?<!\d)(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?!\d)")
_NINO = re.compile(
    r"(?![DFIQUV])[A-CEGHJ-PR-TW-Z](?![DFIOQUV])[A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]"
)
_SECRET_PREFIX = re.compile(
    r"(?:\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}|\bghp_[A-Za-z0-9]{30,}|\bgithub_pat_[A-Za-z0-9_]{40,}"
    r"|\bxox[abpr]-[A-Za-z0-9-]{10,}|\bAKIA[0-9A-Z]{16}\b|\bAIza[0-9A-Za-z_-]{35}"
    r"|\bglpat-[A-Za-z0-9_-]{20,}|\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"
    r"|-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----)"
)
_TOKEN = re.compile(r"[A-Za-z0-9+/_=-]{32,}")
# cheap pre-checks: the spans worth a closer look
_RUN = re.compile(r"[+(]?\d[\d ().-]{8,}\d")  # digits and separators, 10+ characters
_NINO_HINT = re.compile(r"[A-Z]{2} ?\d\d ?\d\d ?\d\d ?[A-D]")
_IBAN_HINT = re.compile(r"[A-Z]{2}\d\d")
_SECRET_HINTS = (
    "sk-",
    "ghp_",
    "github_pat_",
    "xox",
    "AKIA",
    "AIza",
    "glpat-",
    "eyJ",
    "PRIVATE KEY",
)

# ISO 13616 lengths of the IBANs of the countries that use them most (others: 15-34 accepted)
_IBAN_LENGTH = {
    "AT": 20,
    "BE": 16,
    "CH": 21,
    "CZ": 24,
    "DE": 22,
    "DK": 18,
    "ES": 24,
    "FI": 18,
    "FR": 27,
    "GB": 22,
    "GR": 27,
    "HU": 28,
    "IE": 22,
    "IT": 27,
    "LU": 20,
    "NL": 18,
    "NO": 15,
    "PL": 28,
    "PT": 25,
    "RO": 24,
    "SE": 24,
    "SK": 24,
}


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _iban_valid(raw: str) -> bool:
    iban = raw.replace(" ", "")
    expected = _IBAN_LENGTH.get(iban[:2])
    if (expected is not None and len(iban) != expected) or not 15 <= len(iban) <= 34:
        return False
    moved = iban[4:] + iban[:4]
    number = "".join(str(int(ch, 36)) for ch in moved)
    return int(number) % 97 == 1


def _entropy(token: str) -> float:
    counts: dict[str, int] = {}
    for ch in token:
        counts[ch] = counts.get(ch, 0) + 1
    n = len(token)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def email(text: str) -> bool:
    return "@" in text and _EMAIL.search(text) is not None


_last: tuple[str, list[str]] = ("", [])


def _runs(text: str) -> list[str]:
    """The digit runs of `text`, found once for the detectors that read them (the last text's
    runs are kept: `scan` asks for the same text several times in a row)."""
    global _last
    seen, runs = _last
    if seen is text or seen == text:
        return runs
    runs = [m.group() for m in _RUN.finditer(text)]
    _last = (text, runs)
    return runs


def phone(text: str) -> bool:
    return any(_phone_in(run) for run in _runs(text))


def _phone_in(text: str) -> bool:
    for match in _PHONE.finditer(text):
        number = match.group()
        digits = sum(ch.isdigit() for ch in number)
        if 10 <= digits <= 15 and not _looks_like_a_date_or_version(number):
            return True
    return False


def _looks_like_a_date_or_version(s: str) -> bool:
    return bool(re.fullmatch(r"\d{4}[.-]\d{2}[.-]\d{2}(?:[ .-]\d{2}){0,2}", s))


def payment_card(text: str) -> bool:
    return any(_card_in(run) for run in _runs(text))


def _card_in(text: str) -> bool:
    for match in _CARD.finditer(text):
        digits = re.sub(r"[ -]", "", match.group())
        if 13 <= len(digits) <= 19 and digits[0] in "23456" and _luhn(digits):
            return True
    return False


def iban(text: str) -> bool:
    if _IBAN_HINT.search(text) is None:
        return False
    return any(_iban_valid(m.group()) for m in _IBAN.finditer(text))


def national_id(text: str) -> bool:
    if "-" in text and any(_SSN.search(run) for run in _runs(text)):
        return True
    return any(_NINO.fullmatch(m.group()) for m in _NINO_HINT.finditer(text))


def secret(text: str) -> bool:
    if any(hint in text for hint in _SECRET_HINTS) and _SECRET_PREFIX.search(text):
        return True
    for match in _TOKEN.finditer(text):
        token = match.group()
        classes = (
            any(c.isdigit() for c in token),
            any(c.islower() for c in token),
            any(c.isupper() for c in token),
        )
        if sum(classes) == 3 and _entropy(token) > 4.0 and "/" not in token.strip("/"):
            return True
    return False


DETECTORS: dict[str, Callable[[str], bool]] = {
    "email": email,
    "phone": phone,
    "payment_card": payment_card,
    "iban": iban,
    "national_id": national_id,
    "secret": secret,
}


def scan(text: str, names: Iterable[str]) -> list[str]:
    """The named detectors that find something in `text` (in the order named)."""
    return [name for name in names if DETECTORS[name](text)]
