from __future__ import annotations

import uuid

from console.pages.base import select_options


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
