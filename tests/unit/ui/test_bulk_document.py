"""A tenants document pasted into the console: parsed as `tenantgate apply` reads it, with clear errors."""

from __future__ import annotations

import pytest

from tenantgate.errors import InvalidRequest
from tenantgate.ui.bulk import parse


def test_a_yaml_or_json_document_is_read() -> None:
    assert set(parse("tenants:\n  acme:\n    plan: growth\n").tenants) == {"acme"}
    assert set(parse('{"tenants": {"solo": {}}}').tenants) == {"solo"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tenants:\n  acme: [\n", "Line 3"),
        ("- just a list\n", "Expected a 'tenants' map"),
        ("tenants:\n  acme:\n    plan: 7\n", "tenants.acme.plan"),
        # a few lines of anchors can stand for a document too large to hold
        ("a: &x [1, 1, 1]\nb: &y [*x, *x, *x]\ntenants: {}\n", "Line 2: aliases"),
    ],
)
def test_a_bad_document_is_refused_with_where_and_why(text: str, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        parse(text)


@pytest.mark.parametrize(
    "text",
    ["tenants:\n  acme:\n    name: 2024-02-30\n", "tenants: {n: " + "9" * 5000 + "}\n", "[" * 3000],
)
def test_yaml_the_parser_itself_cannot_hold_is_refused_not_a_crash(text: str) -> None:
    with pytest.raises(InvalidRequest, match=r"Not a tenants document|tenants\.acme\.name"):
        parse(text)
