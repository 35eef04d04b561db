from __future__ import annotations

import uuid
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from django.template import engines
from django.utils import timezone

from console.pages.base import select_options, time_element


def test_options_are_escaped_and_the_chosen_one_selected():
    chosen = uuid.uuid4()
    html = select_options(
        [(chosen, "a@example.test"), ('x"><b>', "<script>alert(1)</script>")], selected=str(chosen)
    )
    assert html == (
        f'<option value="{chosen}" selected>a@example.test</option>'
        '<option value="x&quot;&gt;&lt;b&gt;">&lt;script&gt;alert(1)&lt;/script&gt;</option>'
    )
    assert "selected" not in select_options([(chosen, "a")])


@pytest.mark.parametrize("zone", ["UTC", "America/New_York"])
@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, 123, tzinfo=ZoneInfo("Europe/Paris")),
    ],
)
def test_a_time_element_is_what_the_date_filters_write(zone, moment):
    template = engines["django"].from_string(
        """<time datetime="{{ t|date:'c' }}">{{ t|date:"Y-m-d H:i" }}</time>"""
    )
    with timezone.override(zone):
        assert str(time_element(moment)) == template.render({"t": moment})
    assert time_element(None) is None
