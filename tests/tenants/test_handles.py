from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from tenants.handles import handle_from_name, validate_handle


@pytest.mark.parametrize("handle", ["acme", "acme-data", "a", "team-42", "0day", "a" * 63])
def test_valid_handles(handle):
    validate_handle(handle)


@pytest.mark.parametrize(
    "handle", ["", "Acme", "acme_data", "-acme", "acme-", "acme data", "a" * 64, "ácme", "acme.io"]
)
def test_invalid_handles(handle):
    with pytest.raises(ValidationError):
        validate_handle(handle)


@pytest.mark.parametrize(
    ("name", "handle"),
    [("Acme Data", "acme-data"), ("  Big__Co!! ", "big-co"), ("Ünïcode Ltd", "unicode-ltd")],
)
def test_handle_from_name(name, handle):
    assert handle_from_name(name) == handle


def test_handle_from_a_name_without_letters_is_still_valid():
    validate_handle(handle_from_name("!!!"))
