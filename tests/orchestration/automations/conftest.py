from __future__ import annotations

import pytest

from orchestration.services import triggers


@pytest.fixture(autouse=True)
def _fresh_automations_memo():
    """Each test's rows are rolled back without signals: no workspace's remembered triggers may
    outlive its test."""
    triggers.automations_memo_clear()
    yield
    triggers.automations_memo_clear()
