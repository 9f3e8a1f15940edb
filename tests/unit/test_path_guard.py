from hypothesis import given
from hypothesis import strategies as st

from warden.transport.path_guard import path_problem


def test_clean_paths_pass() -> None:
    for path in (b"/", b"/v1/agents", b"/v1/agents/invoice-bot", b"/v1/agents/", b"/a%20b"):
        assert path_problem(path) is None, path


def test_ambiguous_paths_are_refused() -> None:
    for path in (
        b"/v1/../x",
        b"/v1/./x",
        b"/v1//x",
        b"/v1/%2e%2e/x",
        b"/v1/%2E/x",
        b"/v1/a%2fb",
        b"/v1/a%2Fb",
        b"/v1/a%5Cb",
        b"/v1/a\\b",
        b"/v1/%c0%ae",
        b"/v1/%",
        b"/v1/%g1",
        b"/v1/%00",
        b"/v1/a\x00",
        b"v1/x",
        b"/" + b"a" * 5000,
    ):
        assert path_problem(path) is not None, path


@given(st.binary(max_size=200))
def test_total(path: bytes) -> None:
    result = path_problem(path)
    assert result is None or isinstance(result, str)
