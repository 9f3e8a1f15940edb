"""Realistic records for the DLP benchmark: CRM customers and FHIR patients, in the shapes
services answer with, made deterministically so every run classifies the same data. Every
customer has a name, an e-mail address, an international phone number, a postal address,
dates, amounts and often free text; one in ten an IBAN, one in twenty a card number. In the
mixed set one record in five is a FHIR Patient (identifiers, birth date, phone, a
condition). No value
repeats across records, so nothing is cheaper for having been seen."""

from __future__ import annotations

import json
import random
from typing import Any

from stdnum import iban, luhn

FIRST = [
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Frances",
    "Ken",
    "Radia",
    "Niklaus",
]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson"]
CITIES = [("Berlin", "DE", "10115"), ("Lyon", "FR", "69001"), ("Austin", "US", "73301")]
NOTES = [
    "Called about the invoice for order 20931; will pay by the end of the month.",
    "Prefers e-mail. Renewal due in March, discussed the enterprise tier.",
    "Asked to update the delivery address, see ticket 88123.",
    "",
]
CONDITIONS = [("E11.9", "Type 2 diabetes mellitus"), ("I10", "Essential hypertension")]


def _card(rng: random.Random) -> str:
    body = "4" + "".join(str(rng.randrange(10)) for _ in range(14))
    return body + luhn.calc_check_digit(body)


def _iban(rng: random.Random) -> str:
    """A German IBAN with valid check digits (a bank code and an account number)."""
    bban = "".join(str(rng.randrange(10)) for _ in range(18))
    return "DE" + iban.calc_check_digits("DE00" + bban) + bban


def _phone(i: int, country: str, rng: random.Random) -> str:
    if country == "US":
        return f"+1 650-253-{i % 10000:04d}"
    if country == "FR":
        return f"+33 4 72 {rng.randrange(10, 99)} {rng.randrange(10, 99)} {rng.randrange(10, 99)}"
    return f"+49 30 {rng.randrange(10_000_000, 99_999_999)}"


def customer(i: int, rng: random.Random) -> dict[str, Any]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    city, country, postcode = rng.choice(CITIES)
    record: dict[str, Any] = {
        "id": f"cus_{100000 + i}",
        "name": f"{first} {last}",
        "email": f"{first.lower()}.{last.lower()}{i}@example.com",
        "phone": _phone(i, country, rng),
        "address": {"line1": f"{rng.randrange(1, 200)} Main Street", "city": city,
                    "postcode": postcode, "country": country},
        "created_at": f"2025-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}T10:00:00Z",
        "tier": rng.choice(["free", "pro", "enterprise"]),
        "lifetime_value": round(rng.uniform(10, 50000), 2),
        "notes": rng.choice(NOTES),
        "tags": ["newsletter"] if i % 3 else [],
    }  # fmt: skip
    if i % 20 == 0:  # a card number where it should not be: what DLP is for
        record["payment"] = {"card": _card(rng), "expiry": "12/29"}
    if i % 10 == 3:  # business customers paying by transfer
        record["bank"] = {"iban": _iban(rng)}
    return record


def patient(i: int, rng: random.Random) -> dict[str, Any]:
    code, text = rng.choice(CONDITIONS)
    return {
        "resourceType": "Patient",
        "id": f"pat-{i}",
        "identifier": [{"system": "urn:oid:2.16.840.1.113883.4.1", "value": f"MRN{700000 + i}"}],
        "name": [{"family": rng.choice(LAST), "given": [rng.choice(FIRST)]}],
        "birthDate": f"19{rng.randrange(40, 99)}-0{rng.randrange(1, 9)}-1{rng.randrange(0, 9)}",
        "telecom": [{"system": "phone", "value": f"+1 650-253-{i % 10000:04d}"}],
        "address": [{"city": "Austin", "state": "TX", "postalCode": "73301"}],
        "condition": {"code": code, "display": text},
        "region": "us",
    }


def records(count: int, seed: int = 7, *, patients: bool = True) -> list[dict[str, Any]]:
    """``count`` records: four customers to one patient, or customers only."""
    rng = random.Random(seed)
    return [patient(i, rng) if patients and i % 5 == 4 else customer(i, rng) for i in range(count)]


def document(count: int, *, patients: bool = True) -> bytes:
    return json.dumps({"data": records(count, patients=patients)}).encode()
