"""Phone number validity from libphonenumber's metadata (phonenumbers), in one regex call.

``phonenumbers.is_valid_number`` answers after a dozen pattern checks through its object
model: about 10 µs a number, too slow for every phone number in every answer the gateway
relays. This module asks the same question of the same metadata, compiled once per country
calling code into one pattern: a national significant number is valid for a region when it
matches the region's general description and one of its number types (premium rate, toll
free, ..., fixed line, mobile), each with its possible lengths; it is a phone number when it is
valid for any region that shares the calling code. The unit tests hold the answers to
``is_valid_number_for_region`` over many numbers.
"""

from __future__ import annotations

import functools
import re

import phonenumbers
from phonenumbers.phonemetadata import PhoneMetadata, PhoneNumberDesc

TYPES = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
    "mobile",
)
NON_GEO = "001"


def _desc(desc: PhoneNumberDesc | None) -> str | None:
    """A description as a pattern: its possible lengths (a lookahead) and its number pattern."""
    if desc is None or not desc.national_number_pattern:
        return None
    lengths = "|".join(rf"\d{{{n}}}" for n in desc.possible_length if n > 0)
    pattern = f"(?:{desc.national_number_pattern})"
    return f"(?=(?:{lengths})$){pattern}" if lengths else pattern


def _region(metadata: PhoneMetadata) -> str | None:
    general = _desc(metadata.general_desc)
    types = [p for p in (_desc(getattr(metadata, t, None)) for t in TYPES) if p is not None]
    if general is None or not types:
        return None
    return f"(?=(?:{general})$)(?:{'|'.join(f'(?:{t})' for t in types)})"


@functools.lru_cache(maxsize=512)
def _pattern(country_code: int) -> re.Pattern[str] | None:
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code, ())
    parts = []
    for region in regions:
        if region == NON_GEO:
            metadata = PhoneMetadata.metadata_for_nongeo_region(country_code)
        else:
            metadata = PhoneMetadata.metadata_for_region(region)
        part = _region(metadata) if metadata is not None else None
        if part is not None:
            parts.append(part)
    return re.compile("|".join(f"(?:{p})" for p in parts)) if parts else None


def valid(country_code: int, national: str) -> bool:
    """Is ``national`` (digits only, leading zeros kept) a valid number under the code?"""
    pattern = _pattern(country_code)
    return pattern is not None and pattern.fullmatch(national) is not None


def valid_international(digits: str) -> bool:
    """Digits written after a ``+``: the calling code (country codes are prefix-free), then the
    national number; a trunk ``0`` written after the code, as in ``+44 (0)20 ...``, is
    forgiven."""
    for size in (1, 2, 3):
        code = int(digits[:size])
        if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            national = digits[size:]
            if valid(code, national):
                return True
            return national.startswith("0") and valid(code, national[1:])
    return False
