"""Detectors for sensitive values, that validate rather than only match.

A cheap pattern picks candidates out of a string; a validator decides: payment cards by the
Luhn check (python-stdnum) and their issuers' number ranges, US Social Security numbers by
their assignment rules, IBANs by their ISO 7064 check digits, phone numbers by Google's
libphonenumber metadata (phonenumbers), e-mail addresses by their syntax. Field names count
too: a value under ``mrn`` or ``patient_id`` is a medical record identifier whatever it looks
like, and one under ``ssn``, ``routing_number`` or ``npi`` counts when it validates (US
routing numbers by their ABA checksum, National Provider Identifiers by the Luhn check over the
80840 prefix).

Each finding is a kind (``card``, ``ssn``, ...) that maps to a data class (``pci``, ``pii``,
``phi``): :data:`CLASS_OF`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import phonenumbers
from stdnum import iban, luhn
from stdnum.us import rtn, ssn

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

# Candidates: digit runs (with spaces or dashes), IBAN shapes, e-mail shapes, phone shapes.
_DIGITS = re.compile(r"(?<![\w.])\+?\d[\d \-().]{7,22}\d(?![\w])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
    r"[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])"
)
_NOT_DIGIT = re.compile(r"\D")

# Field names (lower case, ``-`` and ``_`` removed) that say what a value is.
KEY_KINDS = {
    "mrn": "mrn",
    "medicalrecordnumber": "mrn",
    "medicalrecord": "mrn",
    "patientid": "patient_id",
    "patientnumber": "patient_id",
    "birthdate": "birth_date",
    "dateofbirth": "birth_date",
    "dob": "birth_date",
    "diagnosis": "clinical",
    "diagnoses": "clinical",
    "condition": "clinical",
    "icd10": "clinical",
    "medication": "clinical",
    "allergy": "clinical",
    "ssn": "ssn",
    "socialsecuritynumber": "ssn",
    "routingnumber": "routing_number",
    "aba": "routing_number",
    "npi": "npi",
    "providernpi": "npi",
}
# Field names whose values are validated as one kind (so "123-45-6789" under "ssn" counts,
# and under "ssn" an invalid one does not).
VALIDATED_KEYS = {"ssn", "routing_number", "npi"}

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


def key_kind(key: str) -> str | None:
    return KEY_KINDS.get(key.lower().replace("_", "").replace("-", ""))


def find(value: str) -> set[str]:
    """The kinds of sensitive value ``value`` holds (validated)."""
    found: set[str] = set()
    if len(value) < 8:
        return found
    if "@" in value:
        for match in _EMAIL.finditer(value):
            if ".." not in match.group(0):
                found.add("email")
    if _has_digit_run(value):
        for match in _DIGITS.finditer(value):
            kind = digits_kind(match.group(0))
            if kind is not None:
                found.add(kind)
    if any(c.isupper() for c in value[:2]):
        for match in _IBAN.finditer(value):
            if iban.is_valid(match.group(0)):
                found.add("iban")
    return found


def _has_digit_run(value: str) -> bool:
    run = 0
    for c in value:
        if c.isdigit():
            run += 1
            if run >= 4:
                return True
        elif c not in " -().+":
            run = 0
    return False


def digits_kind(text: str) -> str | None:
    """What a run of digits (with separators) validates as, if anything."""
    digits = _NOT_DIGIT.sub("", text)
    count = len(digits)
    if 13 <= count <= 19 and _card_issuer(digits) and luhn.is_valid(digits):
        return "card"
    if count == 9 and _ssn_shaped(text) and ssn.is_valid(digits):
        return "ssn"
    if _phone(text, digits):
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


def _phone(text: str, digits: str) -> bool:
    stripped = text.strip()
    try:
        if stripped.startswith("+"):
            if not 8 <= len(digits) <= 15:
                return False
            number = phonenumbers.parse(stripped, None)
        elif len(digits) == 10 and _nanp_shaped(stripped):
            # A North American number written nationally: build it, skip the parser.
            number = phonenumbers.PhoneNumber(country_code=1, national_number=int(digits))
        else:
            return False
    except phonenumbers.NumberParseException:
        return False
    return bool(phonenumbers.is_valid_number(number))


def _nanp_shaped(text: str) -> bool:
    """``(650) 253-0000``, ``650-253-0000``, ``650.253.0000``, ``650 253 0000``."""
    return bool(re.fullmatch(r"\(?\d{3}\)?[ .-]?\d{3}[ .-]\d{4}", text))


def validated(kind: str, value: str) -> bool:
    """For a field named as ``kind``: does its value validate as one?"""
    digits = _NOT_DIGIT.sub("", value)
    if kind == "ssn":
        return len(digits) == 9 and bool(ssn.is_valid(digits))
    if kind == "routing_number":
        return len(digits) == 9 and bool(rtn.is_valid(digits))
    if kind == "npi":  # the Luhn check over the 80840 health-industry prefix
        return len(digits) == 10 and digits[0] in "12" and bool(luhn.is_valid("80840" + digits))
    return True


def classes(kinds: Iterable[str]) -> set[str]:
    return {CLASS_OF[k] for k in kinds if k in CLASS_OF}
