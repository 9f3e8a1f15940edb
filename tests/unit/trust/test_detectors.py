"""Detectors validate: real identifiers count, look-alikes do not."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from warden.trust import detectors
from warden.trust.detectors import find


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("4111 1111 1111 1111", "card"),  # Visa test number
        ("card 4012-8888-8888-1881 on file", "card"),
        ("5555555555554444", "card"),  # Mastercard
        ("2223003122003222", "card"),  # Mastercard 2-series
        ("378282246310005", "card"),  # American Express
        ("6011111111111117", "card"),  # Discover
        ("3530111333300000", "card"),  # JCB
        ("SSN 123-45-6789", "ssn"),
        ("DE89 3704 0044 0532 0130 00", "iban"),
        ("GB82WEST12345698765432", "iban"),
        ("+1 650-253-0000", "phone"),
        ("call (650) 253-0000 today", "phone"),
        ("+44 20 7946 0958", "phone"),
        ("jane.doe@example.com", "email"),
        ("write to ops+alerts@mail.example.org.", "email"),
    ],
)
def test_real_identifiers_are_found(text: str, kind: str) -> None:
    assert kind in find(text)


@pytest.mark.parametrize(
    "text",
    [
        "4111 1111 1111 1112",  # Luhn fails
        "1234567812345670",  # passes Luhn, no card scheme starts with 1
        "9111111111111111",  # no scheme
        "411111111111111",  # Visa prefix, wrong length
        "000-12-3456",  # SSN area 000 is never assigned
        "666-12-3456",  # nor 666
        "123-00-4567",  # nor group 00
        "123456789",  # nine bare digits: too common to call an SSN
        "DE89 3704 0044 0532 0130 01",  # IBAN check digits fail
        "+1 555-010-0000",  # not a valid number
        "(123) 456-7890",  # area code 123 does not exist
        "2026-12-01 19:00:00",  # a timestamp
        "order 2026120119",
        "user@@example.com",
        "jane.doe@example",  # no top-level domain
        "a..b@example.com",
        "version 1.2.3.4567",
    ],
)
def test_look_alikes_are_not(text: str) -> None:
    assert find(text) == set(), text


def test_field_names_say_what_a_value_is() -> None:
    assert detectors.key_kind("patient_id") == "patient_id"
    assert detectors.key_kind("MedicalRecordNumber") == "mrn"
    assert detectors.key_kind("date-of-birth") == "birth_date"
    assert detectors.key_kind("amount") is None
    assert detectors.validated("ssn", "123456789")  # under "ssn", bare digits count
    assert not detectors.validated("ssn", "000123456")
    assert detectors.validated("routing_number", "021000021")  # a real ABA checksum
    assert not detectors.validated("routing_number", "021000022")
    assert detectors.validated("npi", "1234567893")  # the CMS example NPI
    assert not detectors.validated("npi", "1234567890")


def test_kinds_map_to_classes() -> None:
    assert detectors.classes({"card", "ssn", "mrn"}) == {"pci", "pii", "phi"}


@given(st.text(max_size=80))
def test_any_text_gives_known_kinds(text: str) -> None:
    assert find(text) <= set(detectors.CLASS_OF)
