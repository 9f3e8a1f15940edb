import pytest
from hypothesis import given
from hypothesis import strategies as st

from warden.identity.errors import InvalidName, InvalidSpiffeId
from warden.identity.spiffe_id import SpiffeId, validate_name

VALID = [
    ("spiffe://example.org", "example.org", ""),
    ("spiffe://example.org/agent/invoice-bot", "example.org", "/agent/invoice-bot"),
    ("spiffe://a-b_c.d/x/Y/z.1", "a-b_c.d", "/x/Y/z.1"),
]
INVALID = [
    ("", "scheme"),
    ("http://example.org/agent/x", "scheme"),
    ("SPIFFE://example.org/agent/x", "scheme"),
    ("spiffe://Example.org/agent/x", "trust domain"),
    ("spiffe://example.org:8443/agent/x", "port"),
    ("spiffe://user@example.org/agent/x", "userinfo"),
    ("spiffe://example.org/agent/x?q=1", "query"),
    ("spiffe://example.org/agent/x#f", "fragment"),
    ("spiffe://example.org/agent/x/", "trailing slash"),
    ("spiffe://example.org//x", "empty path segment"),
    ("spiffe://example.org/agent/../admin", "'..'"),
    ("spiffe://example.org/./x", "'.'"),
    ("spiffe://example.org/agent/%2e%2e", "path may hold"),
    ("spiffe:///agent/x", "empty"),
    ("spiffe://example.org/" + "a" * 2100, "2048"),
]


@pytest.mark.parametrize(("value", "trust_domain", "path"), VALID)
def test_parses_valid_ids(value: str, trust_domain: str, path: str) -> None:
    parsed = SpiffeId.parse(value)
    assert (parsed.trust_domain, parsed.path) == (trust_domain, path)
    assert str(parsed) == value


@pytest.mark.parametrize(("value", "why"), INVALID)
def test_rejects_invalid_ids_saying_why(value: str, why: str) -> None:
    with pytest.raises(InvalidSpiffeId) as caught:
        SpiffeId.parse(value)
    assert why in caught.value.why
    assert caught.value.code == "invalid_spiffe_id"


def test_principal_ids() -> None:
    agent = SpiffeId.for_principal("example.org", "agent", "invoice-bot")
    assert str(agent) == "spiffe://example.org/agent/invoice-bot"
    assert (agent.kind, agent.name) == ("agent", "invoice-bot")
    assert SpiffeId.parse("spiffe://example.org/other/x").kind is None


@pytest.mark.parametrize("name", ["", "-x", "x-", "Upper", "a/b", "a b", "x" * 64, "..", "é"])
def test_rejects_bad_names(name: str) -> None:
    with pytest.raises(InvalidName):
        validate_name(name)


@given(st.text(max_size=300))
def test_parse_is_total(value: str) -> None:
    """Garbage in -> our error, never another."""
    try:
        parsed = SpiffeId.parse(value)
    except InvalidSpiffeId:
        return
    assert SpiffeId.parse(str(parsed)) == parsed


@given(st.from_regex(r"spiffe://[a-z0-9.\-_]{1,20}(/[A-Za-z0-9_\-]{1,10}){0,4}", fullmatch=True))
def test_round_trips(value: str) -> None:
    assert str(SpiffeId.parse(value)) == value
