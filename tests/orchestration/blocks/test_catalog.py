"""The committed catalogue and the checksum agree with the installed ``prefect``."""

from __future__ import annotations

import json

import pytest
from prefect.blocks.core import Block
from prefect.blocks.notifications import SlackWebhook
from prefect.blocks.system import Secret

from orchestration.schemas.blocks import (
    keep_unchanged_secrets,
    obfuscate_secrets,
    schema_checksum,
    system_catalog,
)
from tests.orchestration.blocks.make_catalog import CATALOG_PATH, build, render


def test_the_catalogue_is_what_the_installed_prefect_registers():
    assert CATALOG_PATH.read_text() == render(build()), (
        "rebuild: python -m tests.orchestration.blocks.make_catalog"
    )


@pytest.mark.parametrize("cls", [Secret, SlackWebhook])
def test_checksum_matches_prefect(cls):
    fields = json.loads(json.dumps(cls.model_json_schema()))
    assert schema_checksum(fields) == cls._calculate_schema_checksum()


def test_every_catalogue_checksum_matches_prefect():
    for entry in system_catalog():
        fields = entry["block_schema"]["fields"]
        assert entry["block_schema"]["checksum"] == Block._calculate_schema_checksum(fields)


def test_obfuscation_follows_secret_fields_with_wildcards():
    data = {"value": "s3cr3t", "nested": {"a": {"x": 1}, "b": 2}, "plain": "ok"}
    assert obfuscate_secrets(data, ["value", "nested.*"]) == {
        "value": "********",
        "nested": {"a": {"x": "********"}, "b": "********"},
        "plain": "ok",
    }


def test_a_secret_field_holding_an_object_is_hidden_leaf_by_leaf():
    """A ``Secret`` with a JSON value: Prefect's server answers it in the clear without
    ``include_secrets``; here every leaf under the secret field is obfuscated, the shape kept."""
    data = {"value": {"token": "s3cr3t", "nested": {"retries": 3}, "list": [1]}, "plain": {"a": 1}}
    assert obfuscate_secrets(data, ["value"]) == {
        "value": {"token": "********", "nested": {"retries": "********"}, "list": "********"},
        "plain": {"a": 1},
    }
    # Posting the obfuscated answer back keeps the stored leaves.
    assert keep_unchanged_secrets(
        {"value": {"token": "********", "nested": {"retries": 4}}}, data, ["value"]
    ) == {"value": {"token": "s3cr3t", "nested": {"retries": 4}}}
