"""Detectors validate: real identifiers count, look-alikes do not."""

from __future__ import annotations

import random

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum import iban

from warden.trust import detectors, phones
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


def _numbers(count: int) -> list[tuple[int, str]]:
    """(calling code, national number): mutated example numbers of every region, and noise."""
    rng = random.Random(20261201)
    codes = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
    out = []
    for _ in range(count):
        code = rng.choice(codes)
        national = "".join(str(rng.randrange(10)) for _ in range(rng.randrange(4, 14)))
        region = rng.choice(phonenumbers.COUNTRY_CODE_TO_REGION_CODE[code])
        example = phonenumbers.example_number(region) if region != "001" else None
        if example is not None and rng.random() < 0.5:
            real = phonenumbers.national_significant_number(example)
            keep = len(real) - rng.randrange(0, 4)
            national = real[:keep] + "".join(str(rng.randrange(10)) for _ in real[keep:])
        out.append((code, national))
    return out


def test_phone_validity_is_libphonenumbers() -> None:
    valid = 0
    for code, national in _numbers(4000):
        number = phonenumbers.PhoneNumber(country_code=code, national_number=int(national))
        zeros = len(national) - len(national.lstrip("0"))
        if zeros:
            number.italian_leading_zero = True
            number.number_of_leading_zeros = zeros
        regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE[code]
        expected = any(phonenumbers.is_valid_number_for_region(number, r) for r in regions)
        nsn = phonenumbers.national_significant_number(number)
        assert phones.valid(code, nsn) == expected, (code, nsn)
        valid += expected
    assert valid > 1000  # the sample holds real numbers, not only noise


def test_iban_validity_is_stdnums() -> None:
    rng = random.Random(7)
    samples = ["DE89370400440532013000", "FR1420041010050500013M02606", "GB29NWBK60161331926819"]
    samples += ["NL91ABNA0417164300", "BE68539007547034", "CH9300762011623852957"]
    valid = 0
    for _ in range(3000):
        chars = list(rng.choice(samples))
        for _ in range(rng.randrange(3)):
            chars[rng.randrange(len(chars))] = rng.choice("0123456789ABCXYZ")
        number = "".join(chars)[: None if rng.random() < 0.9 else -1]
        assert detectors.iban_valid(number) == iban.is_valid(number, check_country=False)
        valid += detectors.iban_valid(number)
    assert valid > 500
