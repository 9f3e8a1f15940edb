"""Detectors for sensitive values, that validate rather than only match.

They read JSON text (a record as serialised, see :mod:`warden.trust.classify`): cheap patterns
with a literal or digit start pick candidates out of the whole text in one pass each, and a
validator decides. Payment cards by the Luhn check (python-stdnum) and their issuers' number
ranges, US Social Security numbers by their assignment rules and dashed shape, IBANs by their
ISO 7064 check digits, phone numbers by libphonenumber's numbering plans (phonenumbers, via
:mod:`warden.trust.phones`), e-mail addresses by their syntax. Field names count too
(:func:`key_kind`): a value under ``mrn`` or ``patient_id`` is a medical record identifier
whatever it looks like, and one under ``ssn``, ``routing_number`` or ``npi`` counts when it
validates (US routing numbers by their ABA checksum, National Provider Identifiers by the Luhn
check over the 80840 prefix).

Each finding is a kind (``card``, ``ssn``, ...) that maps to a data class (``pci``, ``pii``,
``phi``): :data:`CLASS_OF`.
"""

from __future__ import annotations

import functools
import json
import re
from bisect import bisect_right
from collections.abc import Iterable, Iterator

import re2
from stdnum import luhn, numdb
from stdnum.iso7064 import mod_97_10
from stdnum.us import rtn, ssn

from warden.trust import phones

CLASS_OF = {
    "card": "pci",
    "ssn": "pii",
    "iban": "pii",
    "routing_number": "pii",
    "phone": "pii",
    "email": "pii",
    "birth_date": "pii",
    "npi": "phi",
    "mrn": "phi",
    "patient_id": "phi",
    "clinical": "phi",
}

# -- candidates in JSON text (bytes) --------------------------------------------------------------

# Runs of 9 to 19 digits with the separators people write ("(650) 253-0000"): RE2, whose
# automaton reads text several times faster than re for a pattern that starts on any digit.
_DIGITS = re2.compile(rb"\d(?:[ \-().]{0,2}\d){8,18}")
_CARD_RUNS = re2.compile(rb"\d(?:[ \-().]{0,2}\d){12,18}")  # 13 to 19 digits
_EMAIL_DOMAIN = re.compile(
    rb"@((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24})(?![A-Za-z0-9_-])"
)
_LINK = re.compile(rb"://(?:[^/\s\"@]{0,256}@)?([A-Za-z0-9.-]{1,253})")
_IBAN_DB = numdb.get("iban")
_IBAN = re.compile(rb"[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?")
_DROP = str.maketrans("", "", " -().+")
_SEPARATORS = b" -().+"
_WORD = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_UPPER = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_UPPER_OR_DIGIT = _UPPER | frozenset(b"0123456789")
_LOCAL_REVERSED = re.compile(rb"[A-Za-z0-9._%+-]{1,65}")
_ALNUM = _WORD - {ord("_")}
_WORD_OR_DOT = _WORD | {ord(".")}
_OPENERS = frozenset(b"+(")
_UNANCHORED = re2._Anchor.UNANCHORED
_NANP = re.compile(r"\(?\d{3}\)?[ .-]?\d{3}[ .-]\d{4}")


def spans(pattern: re2._Regexp, text: bytes) -> list[tuple[int, int]]:
    """Where ``pattern`` matches in ``text``. RE2's compiled program is called directly: the
    module's finditer builds a generator frame and a match object per match, which costs
    more than the search."""
    search = getattr(pattern, "_regexp", None)
    if search is None:  # another version of the module: its public API
        return [m.span() for m in pattern.finditer(text)]
    found: list[tuple[int, int]] = []
    at, end = 0, len(text)
    while True:
        span = search.Match(_UNANCHORED, text, at, end)[0]
        if span[0] < 0:
            return found
        found.append(span)
        at = span[1] if span[1] > at else at + 1


def scan(
    text: bytes,
    ends: list[int] | None = None,
    *,
    exhaustive: bool = True,
    hosts: set[str] | None = None,
    regions: set[str] | None = None,
) -> tuple[dict[int, set[str]], dict[int, set[str]]]:
    """The kinds of validated value in ``text`` and the classes they make, per record:
    ``ends`` are where the records' texts end in it (None: one record).
    ``exhaustive=False`` skips validating a value that could only add a class its record
    already has (a phone number in a record with an e-mail address is PII either way): what
    a record counts as is the same, for less work. The hosts of links are added to
    ``hosts``, the regions fields name to ``regions``."""
    found: dict[int, set[str]] = {}
    known: dict[int, set[str]] = {}  # the classes found so far, per record

    def add(record: int, kind: str) -> None:
        found.setdefault(record, set()).add(kind)
        known.setdefault(record, set()).add(CLASS_OF[kind])

    def record_at(position: int) -> int:
        return bisect_right(ends, position) if ends is not None else 0

    for position, named_kind in named(text, regions if regions is not None else set()):
        add(record_at(position), named_kind)
    if b"@" in text:
        for match in _EMAIL_DOMAIN.finditer(text):
            at = match.start()
            local = _LOCAL_REVERSED.match(text[max(0, at - 65) : at][::-1])
            if local is not None and _email_local(local.group()) and b".." not in match[1]:
                add(record_at(at), "email")
    size = len(text)
    nothing: set[str] = set()
    records = len(ends) if ends is not None else 1
    # When every record is PII already, only a card number can add a class: read only the
    # runs long enough to be one.
    all_pii = not exhaustive and sum("pii" in c for c in known.values()) == records
    for start, end in spans(_CARD_RUNS if all_pii else _DIGITS, text):
        before = text[start - 1] if start else 0
        record = record_at(start)
        has = nothing if exhaustive else known.get(record, nothing)
        if before in _UPPER:  # "DE89 3704 ...", "GB82WEST1234...": an IBAN or nothing
            if "pii" not in has and _iban_at(text, start):
                add(record, "iban")
            continue
        if before in _WORD_OR_DOT or (end < size and text[end] in _WORD):
            continue  # part of an identifier, a version, a word
        run = text[start - 1 : end] if before in _OPENERS else text[start:end]
        only_cards = "pii" in has
        if only_cards and ("pci" in has or not 13 <= len(run.translate(None, _SEPARATORS)) <= 19):
            continue  # it could only be PII, and the record is PII already
        kind = digits_kind(run.decode(), only_cards=only_cards)
        if kind is None and len(run) > 19 and b" " in run:
            # Two numbers side by side: "4111... 4242...".
            parts = (digits_kind(p.decode()) for p in run.split() if len(p) >= 13)
            kind = next((k for k in parts if k is not None), None)
        if kind is not None:
            add(record, kind)
    if hosts is not None and b"://" in text:
        hosts.update(m.group(1).decode().lower().strip(".") for m in _LINK.finditer(text))
    return found, known


def find(value: str) -> set[str]:
    """The kinds of sensitive value one string holds (validated)."""
    return scan(value.encode("utf-8", errors="replace"))[0].get(0, set())


@functools.lru_cache(maxsize=256)
def _bban(country: str) -> re.Pattern[str] | None:
    """The structure of a country's BBAN (``8!n10!n``) from stdnum's IBAN registry."""
    info = _IBAN_DB.info(country)[0][1]
    structure = info.get("bban") if info else None
    if not structure:
        return None
    kinds = {"n": "[0-9]", "a": "[A-Z]", "c": "[A-Za-z0-9]"}
    return re.compile(
        "".join(f"{kinds[k]}{{{n}}}" for n, k in re.findall(r"([1-9][0-9]*)!([nac])", structure))
    )


def iban_valid(number: str) -> bool:
    """An IBAN (compact, upper case) with its country's BBAN structure and ISO 7064 MOD 97-10
    check digits: ``stdnum.iban.is_valid(number, check_country=False)``, with the structure
    compiled once per country."""
    bban = _bban(number[:2]) if len(number) > 4 and number[:2].isalpha() else None
    return (
        bban is not None
        and bban.fullmatch(number[4:]) is not None
        and bool(mod_97_10.is_valid(number[4:] + number[:4]))
    )


def _iban_at(text: bytes, start: int) -> bool:
    first = start
    while first > 0 and start - first < 30 and text[first - 1] in _UPPER_OR_DIGIT:
        first -= 1
    if first and text[first - 1] in _WORD:
        return False
    for at in range(first, start - 1):
        match = _IBAN.match(text, at)
        if match is not None and iban_valid(match.group().decode().replace(" ", "")):
            return True
    return False


def _email_local(reversed_local: bytes) -> bool:
    """The local part before an ``@`` (as read backwards from it): 1 to 64 characters,
    starting with a letter or digit, no two dots in a row."""
    return (
        len(reversed_local) <= 64 and reversed_local[-1] in _ALNUM and b".." not in reversed_local
    )


def digits_kind(text: str, *, only_cards: bool = False) -> str | None:
    """What a run of digits (with separators) validates as, if anything (``only_cards``:
    whether it is a card number, nothing else)."""
    digits = text.translate(_DROP)
    count = len(digits)
    if not digits.isdigit():
        return None
    if 13 <= count <= 19 and _card_issuer(digits) and luhn.is_valid(digits):
        return "card"
    if only_cards:
        return None
    if count == 9 and _ssn_shaped(text) and ssn.is_valid(digits):
        return "ssn"
    stripped = text.strip()
    if stripped[0] == "+":
        return "phone" if 8 <= count <= 15 and phones.valid_international(digits) else None
    # A North American number written nationally: (650) 253-0000, 650-253-0000.
    if count == 10 and _NANP.fullmatch(stripped) is not None and phones.valid(1, digits):
        return "phone"
    return None


def _ssn_shaped(text: str) -> bool:
    """``123-45-6789`` or ``123 45 6789``: nine bare digits are too common to call an SSN
    (under a field named ``ssn`` they count, see :func:`validated`)."""
    stripped = text.strip()
    return len(stripped) == 11 and stripped[3] in "- " and stripped[6] in "- "


def _card_issuer(digits: str) -> bool:
    """The number ranges of the major card schemes (ISO/IEC 7812 issuer identification)."""
    first2 = int(digits[:2])
    first4 = int(digits[:4])
    count = len(digits)
    if digits[0] == "4":
        return count in (13, 16, 19)  # Visa
    if 51 <= first2 <= 55 or 2221 <= first4 <= 2720:
        return count == 16  # Mastercard
    if first2 in (34, 37):
        return count == 15  # American Express
    if first4 == 6011 or first2 == 65 or 644 <= int(digits[:3]) <= 649:
        return 16 <= count <= 19  # Discover
    if 3528 <= first4 <= 3589:
        return 16 <= count <= 19  # JCB
    if 300 <= int(digits[:3]) <= 305 or first2 in (36, 38):
        return 14 <= count <= 19  # Diners Club
    return False


# -- field names ----------------------------------------------------------------------------------

# What a field's name says its value is, by the words of the name.
KEY_WORDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "mrn": (("mrn",), ("medical", "record", "number"), ("medical", "record")),
    "patient_id": (("patient", "id"), ("patient", "number")),
    "birth_date": (("birth", "date"), ("date", "of", "birth"), ("dob",)),
    "clinical": (
        ("diagnosis",),
        ("diagnoses",),
        ("condition",),
        ("icd10",),
        ("icd", "10"),
        ("medication",),
        ("allergy",),
    ),
    "ssn": (("ssn",), ("social", "security", "number")),
    "routing_number": (("routing", "number"), ("aba",)),
    "npi": (("npi",), ("provider", "npi")),
    "region": (("region",), ("data", "region"), ("residency",)),  # not a kind: where it is
}
# Field names whose values are validated as one kind (so "123-45-6789" under "ssn" counts,
# and under "ssn" an invalid one does not).
VALIDATED_KEYS = frozenset({"ssn", "routing_number", "npi"})


def _spellings(words: tuple[str, ...]) -> set[str]:
    """snake_case, kebab-case, camelCase, PascalCase, UPPER, and an acronym last (patientID)."""
    out: set[str] = set()
    for sep in ("", "_", "-"):
        out.add(sep.join(words))
        out.add(sep.join(words).upper())
        out.add(sep.join(w.capitalize() for w in words))
        out.add(sep.join([words[0], *(w.capitalize() for w in words[1:])]))
        if len(words) > 1:
            out.add(sep.join([words[0], *(w.capitalize() for w in words[1:-1]), words[-1].upper()]))
            out.add(sep.join([*(w.capitalize() for w in words[:-1]), words[-1].upper()]))
    return out


KEY_KINDS: dict[str, str] = {
    spelling: kind
    for kind, names in KEY_WORDS.items()
    for words in names
    for spelling in _spellings(words)
}
KEY_NAMES = frozenset(KEY_KINDS)

# FHIR resource types that are clinical records of a patient.
FHIR_CLINICAL = frozenset(
    {
        "Patient",
        "Observation",
        "Condition",
        "Encounter",
        "MedicationRequest",
        "MedicationStatement",
        "AllergyIntolerance",
        "DiagnosticReport",
        "Procedure",
        "Immunization",
        "CarePlan",
    }
)


# A field name that says something, as it appears in JSON text ("mrn":), and FHIR's
# "resourceType": one RE2 automaton over every spelling.
_NAMED = re2.compile(
    b'"('
    + b"|".join(re.escape(name).encode() for name in sorted(KEY_NAMES | {"resourceType"}))
    + b')":'
)
_STRING = re.compile(rb'"((?:[^"\\]|\\.)*)"')
_SCALAR = re.compile(rb"[^,}\]]*")


def named(text: bytes, regions: set[str]) -> Iterator[tuple[int, str]]:
    """(position, kind) for each field in ``text`` (JSON) whose name says its value is a
    kind (``mrn``, a validated ``ssn``, ...) and each FHIR clinical resource; the regions
    fields name (``region``, ``data_region``) are added to ``regions``."""
    for start, end in spans(_NAMED, text):
        name = text[start + 1 : end - 2].decode()
        value = _value(text, end)
        if value is None:
            continue
        if name == "resourceType":
            if value in FHIR_CLINICAL:
                yield start, "clinical"
            continue
        kind = KEY_KINDS[name]
        if kind == "region":
            if isinstance(value, str):
                regions.add(value.lower())
        elif kind not in VALIDATED_KEYS or validated(kind, str(value)):
            yield start, kind


def _value(text: bytes, at: int) -> str | bool | None:
    """The value at ``at``: its text for a string or a number, True for a non-empty array or
    object, None for what is empty (null, "", [], {})."""
    while text[at : at + 1] in (b" ", b"\t", b"\r", b"\n"):  # JSON written with spaces
        at += 1
    first = text[at : at + 1]
    if first == b'"':
        close = text.find(b'"', at + 1)
        if close < 0:
            return None
        raw = text[at + 1 : close]
        if raw.endswith(b"\\"):  # an escaped quote: read the string as JSON does
            match = _STRING.match(text, at)
            return str(json.loads(match.group())) if match is not None else None
        if not raw:
            return None
        return raw.decode() if b"\\" not in raw else str(json.loads(text[at : close + 1]))
    if first in (b"[", b"{"):
        inner = text[at + 1 : at + 64].lstrip()
        return None if inner[:1] in (b"]", b"}") else True
    scalar = _SCALAR.match(text, at)
    token = scalar.group().strip() if scalar is not None else b""
    return None if token in (b"", b"null") else token.decode()


def key_kind(key: str) -> str | None:
    """The kind a field's name says its value is (``region`` for where the record is)."""
    return KEY_KINDS.get(key)


def validated(kind: str, value: str) -> bool:
    """For a field named as ``kind``: does its value validate as one?"""
    digits = "".join(c for c in value if c.isdigit())
    if kind == "ssn":
        return len(digits) == 9 and bool(ssn.is_valid(digits))
    if kind == "routing_number":
        return len(digits) == 9 and bool(rtn.is_valid(digits))
    if kind == "npi":  # the Luhn check over the 80840 health-industry prefix
        return len(digits) == 10 and digits[0] in "12" and bool(luhn.is_valid("80840" + digits))
    return True


def classes(kinds: Iterable[str]) -> set[str]:
    return {CLASS_OF[k] for k in kinds if k in CLASS_OF}
