"""Block document data at rest: encrypted, rotatable, and an unreadable token is a 409, not a 500."""

from __future__ import annotations

import pytest

from orchestration.persistence.block_data import BlockDataUnreadable, decrypt_data, encrypt_data


def test_data_round_trips_and_the_token_hides_it(settings):
    settings.BLOCKS_SECRET_KEY = ""
    token = encrypt_data({"password": "hunter2", "n": 1})
    assert "hunter2" not in token and "password" not in token
    assert decrypt_data(token) == {"password": "hunter2", "n": 1}


def test_the_default_key_is_derived_from_secret_key(settings):
    settings.BLOCKS_SECRET_KEY = ""
    token = encrypt_data({"v": 1})
    settings.SECRET_KEY = "another-secret-key-for-this-test-0123456789abcdef"
    with pytest.raises(BlockDataUnreadable) as refused:
        decrypt_data(token)
    assert refused.value.status_code == 409


def test_rotation_reads_old_tokens_and_writes_with_the_newest_key(settings):
    settings.BLOCKS_SECRET_KEY = "old-material"
    old_token = encrypt_data({"v": "old"})
    settings.BLOCKS_SECRET_KEY = "new-material, old-material"
    assert decrypt_data(old_token) == {"v": "old"}
    new_token = encrypt_data({"v": "new"})
    settings.BLOCKS_SECRET_KEY = "new-material"
    assert decrypt_data(new_token) == {"v": "new"}
    with pytest.raises(BlockDataUnreadable):
        decrypt_data(old_token)
