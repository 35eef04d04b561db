"""``/console/`` and ``/console/<account>/``: where a person lands in the console."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse

from access.gate import MEMBERS
from console.pages.base import ConsolePage, layout_context, navigation_for


@login_required
def console_index(request):
    context = layout_context(request)
    if context["switcher"]:
        return redirect(reverse("console-account", args=[context["switcher"][0]["account"].handle]))
    return render(request, "console/no_accounts.html", context)


class AccountHomePage(ConsolePage):
    """``/console/<account>/``: the first page of the navigation this person may open."""

    required_permissions = {"GET": MEMBERS}

    def get(self, request):
        items = navigation_for(self.account, self.permissions)
        if items:
            return redirect(self.url(items[0].url_name))
        return self.page({}, template="console/no_pages.html")
