from __future__ import annotations

import pytest

from orchestration.models import FlowRunInput
from orchestration.models.states import StateType
from orchestration.rules.base import SetStateStatus, apply_rules
from orchestration.rules.pausing import HandlePausingFlows
from orchestration.rules.run_input import ClearStaleRunInput
from tests.orchestration.rules.conftest import ungoverned

pytestmark = pytest.mark.django_db

KEYSET = {"description": "paused-k-description", "response": "paused-k-response", "schema": "paused-k-schema"}


def _store(run, *keys: str) -> None:
    for key in keys:
        FlowRunInput.objects.create(flow_run=run, key=key, value="1")


def _keys(run) -> set[str]:
    return set(FlowRunInput.objects.filter(flow_run=run).values_list("key", flat=True))


class TestClearStaleRunInput:
    def test_an_accepted_pause_deletes_input_under_its_keyset_only(self, initialize_orchestration):
        context = initialize_orchestration(
            StateType.RUNNING,
            StateType.PAUSED,
            proposed_details={"pause_key": "k", "run_input_keyset": KEYSET},
        )
        _store(context.run, *KEYSET.values(), "paused-other-response", "greeting-1")
        apply_rules(context, [HandlePausingFlows, ClearStaleRunInput])
        assert context.response_status == SetStateStatus.ACCEPT
        assert _keys(context.run) == {"paused-other-response", "greeting-1"}

    def test_a_refused_pause_keeps_the_input(self, initialize_orchestration):
        context = initialize_orchestration(
            StateType.RUNNING,
            StateType.PAUSED,
            proposed_details={"pause_key": "k", "run_input_keyset": KEYSET},
            empirical_policy={"pause_keys": ["k"]},
        )
        _store(context.run, *KEYSET.values())
        apply_rules(context, [HandlePausingFlows, ClearStaleRunInput])
        assert context.response_status == SetStateStatus.REJECT
        assert _keys(context.run) == set(KEYSET.values())

    def test_a_pause_without_keyset_deletes_nothing(self, initialize_orchestration):
        context = initialize_orchestration(
            StateType.RUNNING, StateType.PAUSED, proposed_details={"pause_key": "k"}
        )
        _store(context.run, *KEYSET.values())
        apply_rules(context, [ClearStaleRunInput])
        assert _keys(context.run) == set(KEYSET.values())

    def test_other_transitions_are_ignored(self, assert_rule_ignores):
        assert_rule_ignores(ClearStaleRunInput, ungoverned(ClearStaleRunInput))
