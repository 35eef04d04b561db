from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import AccountMembership, Invitation, User, WorkspaceRoleGrant
from accounts.permissions import AccountRole, builtin_workspace_role_id
from accounts.rbac import custom_role_create
from accounts.services import membership_add, membership_remove
from audit.actors import SYSTEM
from billing.models import SeatLedgerEntry
from billing.plans import get_plan
from tests.accounts.sso.conftest import acme, oidc, oidc_peer, sso_settings, web  # noqa: F401 - fixtures
from tests.console.conftest import audited, make_org, session, steady_query_count
from tests.factories import AccountFactory, MembershipFactory, UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db


def membership_of(org, user) -> AccountMembership:
    return AccountMembership.objects.get(account=org.account, user=user)


class TestMembersList:
    def test_admin_sees_people_roles_sign_in_and_seats_with_edit_controls(self, org):
        page = session(org.admin).get(org.url("members/"))
        assert page.status_code == 200
        html = page.content.decode()
        for person in (org.owner, org.admin, org.member):
            assert person.email in html
        assert "Password" in html  # how they sign in
        assert "Seats: <strong>3</strong> used of unlimited" in html
        assert "Send invitation" in html and "Change role" in html and "Remove" in html

    def test_seats_of_a_plan_with_a_limit(self, db):
        org = make_org(plan="team")
        html = session(org.admin).get(org.url("members/")).content.decode()
        assert "Seats: <strong>3</strong> used of <strong>8</strong>" in html

    def test_a_member_sees_no_edit_controls(self, org):
        html = session(org.member).get(org.url("members/")).content.decode()
        assert org.owner.email in html
        assert "Send invitation" not in html and "Change role" not in html and "Remove" not in html
        assert 'name="csrfmiddlewaretoken"' in html  # the sign-out form only
        assert html.count('<form method="post"') == 1  # the search form reads only

    def test_navigation_follows_role_and_plan(self, db):
        org = make_org(plan="hobby")  # no service accounts on this plan
        html = session(org.admin).get(org.url("members/")).content.decode()
        assert "Members" in html and "Service accounts" not in html
        org = make_org(plan="enterprise")
        html = session(org.admin).get(org.url("members/")).content.decode()
        assert f'href="/console/accounts/{org.account.handle}/service-accounts/"' in html

    def test_account_switcher_lists_only_the_persons_accounts(self, org):
        other = make_org()
        MembershipFactory(account=other.account, user=org.admin, role=AccountRole.MEMBER)
        stranger = make_org()
        html = session(org.admin).get(org.url("members/")).content.decode()
        assert other.account.name in html and stranger.account.name not in html

    def test_anonymous_is_sent_to_sign_in(self, org, client):
        response = client.get(org.url("members/"))
        assert response.status_code == 302 and response["Location"].startswith("/login/?next=")

    def test_no_per_row_queries(self, org):
        """More members (of every role, seen and not), invitations (with workspace grants), the
        invitation form's workspaces and custom roles: the same statements."""
        browser = session(org.admin)
        few = steady_query_count(browser, org.url("members/"))
        for n in range(12):
            role = (AccountRole.MEMBER, AccountRole.ADMIN)[n % 2]
            user = UserFactory(last_login=timezone.now() if n % 3 else None)
            membership_add(account=org.account, user=user, role=role, actor=SYSTEM)
        workspaces = [WorkspaceFactory(account=org.account) for _ in range(4)]
        for n in range(2):
            custom_role_create(account=org.account, name=f"role-{n}", scopes=["see_flows"], actor=SYSTEM)
        for n in range(6):
            grant = {f"grant-{workspaces[n % 4].pk}": str(builtin_workspace_role_id("viewer"))}
            response = browser.post(
                org.url("members/"), {"email": f"new{n}@example.test", "role": "member", **grant}
            )
            assert response.status_code == 302
        assert steady_query_count(browser, org.url("members/")) == few
        assert steady_query_count(session(org.owner), org.url("members/")) == few

    def test_each_row_names_the_person_and_links_its_own_actions(self, org):
        """The rows' forms, links and times are built once per page (not a reverse and a date
        filter per row): each still names its own member and invitation."""
        org.member.last_login = timezone.make_aware(datetime(2026, 3, 4, 5, 6, 7), UTC)
        org.member.save(update_fields=["last_login"])
        membership = membership_of(org, org.member)
        browser = session(org.admin)
        browser.post(org.url("members/"), {"email": "later@example.test", "role": "admin"})
        invitation = Invitation.objects.get(email="later@example.test")
        html = browser.get(org.url("members/")).content.decode()
        row = html.split(f'<tr id="member-{membership.pk}">')[1].split("</tr>")[0]
        assert org.member.full_name and f"<td>{org.member.full_name}<br>" in row
        assert f'action="{reverse("console-member-role", args=[org.account.handle, membership.pk])}"' in row
        assert '<option value="member" selected>Member</option><option value="admin">Admin</option>' in row
        assert f'href="{reverse("console-member-remove", args=[org.account.handle, membership.pk])}"' in row
        assert '<time datetime="2026-03-04T05:06:07+00:00">2026-03-04 05:06</time>' in row
        admin_row = html.split(f'<tr id="member-{membership_of(org, org.admin).pk}">')[1].split("</tr>")[0]
        assert '<option value="admin" selected>Admin</option>' in admin_row and "badge" in admin_row
        assert "badge" not in row and "never" not in row
        invited = html.split(f'<tr id="invitation-{invitation.pk}">')[1].split("</tr>")[0]
        revoke = reverse("console-invitation-revoke", args=[org.account.handle, invitation.pk])
        assert f'href="{revoke}"' in invited and "<td>Admin</td>" in invited
        expires = timezone.localtime(invitation.expires_at)
        assert f'<time datetime="{expires.isoformat()}">{expires:%Y-%m-%d %H:%M}</time>' in invited


class TestMembersPages:
    def test_a_page_of_members_at_a_time_and_search(self, org, monkeypatch):
        monkeypatch.setattr("console.pages.members.PAGE_SIZE", 2)
        extra = UserFactory(email="zed@example.test")
        membership_add(account=org.account, user=extra, role=AccountRole.MEMBER, actor=SYSTEM)
        browser = session(org.admin)
        first = browser.get(org.url("members/")).content.decode()
        assert "4 members, 1–2 shown" in first and "Page 1 of 2" in first and "page=2" in first
        second = browser.get(org.url("members/") + "?page=2").content.decode()
        assert "zed@example.test" in second and "zed@example.test" not in first
        found = browser.get(org.url("members/") + "?q=ZED").content.decode()
        assert "1 member matching" in found and "zed@example.test" in found
        assert org.owner.email not in found.split("<table>")[1].split("</table>")[0]


class TestCrossAccount:
    def test_another_accounts_pages_are_404(self, org):
        other = make_org()
        browser = session(org.admin)
        assert browser.get(other.url("members/")).status_code == 404
        assert browser.get("/console/accounts/no-such-account/members/").status_code == 404
        response = browser.post(other.url("members/"), {"email": "x@example.test", "role": "member"})
        assert response.status_code == 404 and not Invitation.objects.filter(account=other.account).exists()

    def test_another_accounts_member_cannot_be_reached_through_this_account(self, org):
        other = make_org()
        theirs = membership_of(other, other.member)
        browser = session(org.admin)
        response = browser.post(org.url(f"members/{theirs.pk}/role"), {"role": "admin"})
        assert response.status_code == 404
        assert browser.post(org.url(f"members/{theirs.pk}/remove")).status_code == 404
        theirs.refresh_from_db()
        assert theirs.role == AccountRole.MEMBER


class TestInvite:
    def test_admin_invites_and_the_email_carries_the_accept_link(
        self, org, django_capture_on_commit_callbacks
    ):
        with django_capture_on_commit_callbacks(execute=True):
            response = session(org.admin).post(
                org.url("members/"), {"email": "New@Example.test", "role": "admin"}
            )
        assert response.status_code == 302 and response["Location"] == org.url("members/")
        invitation = Invitation.objects.get(account=org.account)
        assert invitation.email == "New@example.test" and invitation.account_role == AccountRole.ADMIN
        assert [e.payload["email"] for e in audited(org.account, "invitation.sent")] == ["New@example.test"]
        assert len(mail.outbox) == 1 and mail.outbox[0].to == ["New@example.test"]
        assert re.search(rf"/console/invitations/{invitation.pk}/accept\?token=[\w-]+", mail.outbox[0].body)
        page = session(org.admin).get(org.url("members/")).content.decode()
        assert "Invitation sent to New@example.test." in page or "New@example.test" in page

    def test_a_mail_server_that_refuses_does_not_lose_the_invitation(
        self, org, settings, django_capture_on_commit_callbacks
    ):
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = (
            "127.0.0.1",
            1,
            2,
        )  # nothing listens
        with django_capture_on_commit_callbacks(execute=True):
            response = session(org.admin).post(
                org.url("members/"), {"email": "x@example.test", "role": "member"}
            )
        assert response.status_code == 302
        assert Invitation.objects.filter(account=org.account, email="x@example.test").exists()

    def test_the_services_refusal_is_shown_inline(self, org):
        response = session(org.admin).post(org.url("members/"), {"email": org.member.email, "role": "member"})
        assert response.status_code == 422
        assert f"{org.member.email} is already a member of this account." in response.content.decode()
        assert not Invitation.objects.exists()

    def test_an_admin_cannot_invite_an_owner(self, org):
        response = session(org.admin).post(
            org.url("members/"), {"email": "boss@example.test", "role": "owner"}
        )
        assert response.status_code == 422 and "Owner" in response.content.decode()
        assert not Invitation.objects.exists()

    def test_a_bad_address_is_a_form_error(self, org):
        response = session(org.admin).post(org.url("members/"), {"email": "not-an-address", "role": "member"})
        assert response.status_code == 422 and "Enter a valid email address." in response.content.decode()

    def test_a_member_forging_the_form_gets_403(self, org):
        response = session(org.member).post(
            org.url("members/"), {"email": "x@example.test", "role": "member"}
        )
        assert response.status_code == 403
        assert "create:invitation" in response.content.decode()
        assert not Invitation.objects.exists()

    def test_revoke_asks_first_then_revokes(self, org):
        browser = session(org.admin)
        browser.post(org.url("members/"), {"email": "gone@example.test", "role": "member"})
        invitation = Invitation.objects.get()
        confirm = browser.get(org.url(f"invitations/{invitation.pk}/revoke"))
        assert (
            confirm.status_code == 200
            and "Revoke the invitation to gone@example.test?" in confirm.content.decode()
        )
        assert browser.post(org.url(f"invitations/{invitation.pk}/revoke")).status_code == 302
        invitation.refresh_from_db()
        assert invitation.status == Invitation.Status.REVOKED
        assert len(audited(org.account, "invitation.revoked")) == 1


class TestChangeRoleAndRemove:
    def test_admin_changes_a_role(self, org):
        membership = membership_of(org, org.member)
        response = session(org.admin).post(org.url(f"members/{membership.pk}/role"), {"role": "admin"})
        assert response.status_code == 302
        membership.refresh_from_db()
        assert membership.role == AccountRole.ADMIN
        [event] = audited(org.account, "member.role-changed")
        assert event.payload["role"] == "admin" and event.payload["old_role"] == "member"
        assert event.payload["auth"]["method"] == "session" and event.actor_user_id == org.admin.pk

    def test_the_last_owner_cannot_be_demoted_and_the_page_says_why(self, org):
        membership = membership_of(org, org.owner)
        response = session(org.owner).post(org.url(f"members/{membership.pk}/role"), {"role": "member"})
        assert response.status_code == 422
        assert "The last Owner of an account cannot be demoted." in response.content.decode()
        membership.refresh_from_db()
        assert membership.role == AccountRole.OWNER

    def test_an_unknown_role_is_refused_inline(self, org):
        membership = membership_of(org, org.member)
        response = session(org.admin).post(org.url(f"members/{membership.pk}/role"), {"role": "emperor"})
        assert response.status_code == 422 and "Choose one of the account roles." in response.content.decode()

    def test_remove_asks_first_then_removes(self, org):
        membership = membership_of(org, org.member)
        browser = session(org.admin)
        confirm = browser.get(org.url(f"members/{membership.pk}/remove"))
        assert confirm.status_code == 200 and f"Remove {org.member.email}?" in confirm.content.decode()
        assert AccountMembership.objects.filter(pk=membership.pk).exists()
        assert browser.post(org.url(f"members/{membership.pk}/remove")).status_code == 302
        assert not AccountMembership.objects.filter(pk=membership.pk).exists()
        assert len(audited(org.account, "member.removed")) == 1

    def test_a_member_forging_role_change_or_removal_gets_403(self, org):
        target = membership_of(org, org.admin)
        browser = session(org.member)
        assert browser.post(org.url(f"members/{target.pk}/role"), {"role": "member"}).status_code == 403
        assert browser.get(org.url(f"members/{target.pk}/remove")).status_code == 403
        assert browser.post(org.url(f"members/{target.pk}/remove")).status_code == 403
        target.refresh_from_db()
        assert target.role == AccountRole.ADMIN


class TestAcceptInvitation:
    def _invite(self, org, email: str, django_capture_on_commit_callbacks) -> str:
        with django_capture_on_commit_callbacks(execute=True):
            session(org.admin).post(org.url("members/"), {"email": email, "role": "member"})
        link = re.search(r"https?://[^/\s]+(/console/invitations/\S+)", mail.outbox[-1].body).group(1)
        return link

    def test_someone_new_sets_a_password_and_joins(self, org, client, django_capture_on_commit_callbacks):
        link = self._invite(org, "fresh@example.test", django_capture_on_commit_callbacks)
        page = client.get(link)
        assert page.status_code == 200 and "Create my user and join" in page.content.decode()
        token = link.split("token=")[1]
        weak = client.post(link, {"token": token, "password": "short"})
        assert weak.status_code == 422 and not User.objects.filter(email="fresh@example.test").exists()
        response = client.post(
            link, {"token": token, "password": "a long enough passphrase", "first_name": "Fre"}
        )
        assert response.status_code == 200
        assert f"You joined {org.account.name}" in response.content.decode()
        assert f"/login/?next=/console/accounts/{org.account.handle}/members/" in response.content.decode()
        user = User.objects.get(email="fresh@example.test")
        assert membership_of(org, user).role == AccountRole.MEMBER
        assert len(audited(org.account, "invitation.accepted")) == 1
        again = client.post(link, {"token": token, "password": "a long enough passphrase"})
        assert again.status_code == 422  # single use: the user now exists

    def test_a_signed_in_person_accepts_with_one_click(self, org, django_capture_on_commit_callbacks):
        person = UserFactory(email="known@example.test")
        link = self._invite(org, person.email, django_capture_on_commit_callbacks)
        browser = session(person)
        response = browser.post(link, {"token": link.split("token=")[1]})
        assert response.status_code == 302 and response["Location"] == org.url("members/")
        assert membership_of(org, person)

    def test_a_wrong_token_changes_nothing(self, org, client, django_capture_on_commit_callbacks):
        link = self._invite(org, "fresh@example.test", django_capture_on_commit_callbacks)
        response = client.post(
            link.split("?")[0], {"token": "forged", "password": "a long enough passphrase"}
        )
        assert response.status_code == 422 and "Invitation not found." in response.content.decode()
        assert not User.objects.filter(email="fresh@example.test").exists()


class TestInvitationWorkspaceGrants:
    """Inviting with a role in some workspaces: the grants ride on the invitation and are applied,
    each through ``workspace_access_grant`` with its audit event, when it is accepted."""

    def _second_workspace(self, org):
        from tests.factories import WorkspaceFactory

        return WorkspaceFactory(account=org.account, name="Zeta")

    def test_the_form_offers_a_role_per_workspace(self, org):
        zeta = self._second_workspace(org)
        html = session(org.admin).get(org.url("members/")).content.decode()
        assert "Workspace access" in html
        for workspace in (org.tenant.workspace, zeta):
            assert f'<label for="grant-{workspace.pk}">{workspace.name}</label>' in html
        assert f'<option value="{builtin_workspace_role_id("developer")}">Developer</option>' in html

    def test_invite_with_grants_then_accept_applies_them(
        self, org, client, django_capture_on_commit_callbacks
    ):
        zeta = self._second_workspace(org)
        developer, viewer = builtin_workspace_role_id("developer"), builtin_workspace_role_id("viewer")
        with django_capture_on_commit_callbacks(execute=True):
            response = session(org.admin).post(
                org.url("members/"),
                {
                    "email": "granted@example.test",
                    "role": "member",
                    f"grant-{org.tenant.workspace.pk}": str(developer),
                    f"grant-{zeta.pk}": str(viewer),
                },
            )
        assert response.status_code == 302
        invitation = Invitation.objects.get(account=org.account)
        expected = sorted(
            [
                {"workspace_id": str(org.tenant.workspace.pk), "workspace_role_id": str(developer)},
                {"workspace_id": str(zeta.pk), "workspace_role_id": str(viewer)},
            ],
            key=lambda g: g["workspace_id"],
        )
        assert sorted(invitation.workspace_grants, key=lambda g: g["workspace_id"]) == expected
        (sent,) = audited(org.account, "invitation.sent")
        assert sorted(sent.payload["workspace_grants"], key=lambda g: g["workspace_id"]) == expected
        page = session(org.admin).get(org.url("members/")).content.decode()
        assert f"{org.tenant.workspace.name}: Developer" in page and "Zeta: Viewer" in page

        link = re.search(r"https?://[^/\s]+(/console/invitations/\S+)", mail.outbox[-1].body).group(1)
        accepted = client.post(
            link, {"token": link.split("token=")[1], "password": "a long enough passphrase"}
        )
        assert accepted.status_code == 200
        user = User.objects.get(email="granted@example.test")
        grants = {g.workspace_id: g.role for g in WorkspaceRoleGrant.objects.unscoped().filter(user=user)}
        assert grants == {org.tenant.workspace.pk: "developer", zeta.pk: "viewer"}
        granted = audited(org.account, "workspace-access.granted")
        assert sorted(e.target_id for e in granted) == [str(user.pk)] * 2
        (done,) = audited(org.account, "invitation.accepted")
        assert done.payload["via"] == "link"

    def test_a_role_that_is_not_one_is_refused_inline(self, org):
        response = session(org.admin).post(
            org.url("members/"),
            {"email": "x@example.test", "role": "member", f"grant-{org.tenant.workspace.pk}": "nonsense"},
        )
        assert response.status_code == 422
        assert f"Choose one of the roles for {org.tenant.workspace.name}." in response.content.decode()
        assert not Invitation.objects.exists()

    def test_a_custom_role_of_another_account_is_refused(self, org):
        other = make_org()
        theirs = custom_role_create(account=other.account, name="Theirs", scopes=["see_flows"], actor=SYSTEM)
        response = session(org.admin).post(
            org.url("members/"),
            {"email": "x@example.test", "role": "member", f"grant-{org.tenant.workspace.pk}": str(theirs.pk)},
        )
        assert response.status_code == 422 and not Invitation.objects.exists()

    def test_a_workspace_of_another_account_is_ignored(self, org):
        other = make_org()
        response = session(org.admin).post(
            org.url("members/"),
            {
                "email": "x@example.test",
                "role": "member",
                f"grant-{other.tenant.workspace.pk}": str(builtin_workspace_role_id("owner")),
            },
        )
        assert response.status_code == 302
        assert Invitation.objects.get(account=org.account).workspace_grants == []


def _full_org(plan: str):
    """An account on ``plan`` with every seat taken: its Owner, an Admin and Members."""
    account = AccountFactory(plan=plan)
    owner, admin = UserFactory(), UserFactory()
    MembershipFactory(account=account, user=owner, role=AccountRole.OWNER)
    MembershipFactory(account=account, user=admin, role=AccountRole.ADMIN)
    for _ in range(get_plan(plan).max_seats - 2):
        MembershipFactory(account=account, role=AccountRole.MEMBER)
    return account, admin


class TestSeatsThroughTheConsole:
    """The console is a door of its own: its invitations, revocations and removals are seat
    changes the ledger records as ``console``, and it refuses the person beyond the plan."""

    @pytest.mark.parametrize(
        ("plan", "person"), [("hobby", "third"), ("team", "ninth")], ids=["third-on-hobby", "ninth-on-team"]
    )
    def test_the_person_beyond_the_plan_is_refused_inline_with_nothing_half_created(self, db, plan, person):
        account, admin = _full_org(plan)
        seats = get_plan(plan).max_seats
        users = User.objects.count()
        email = f"{person}@example.test"
        response = session(admin).post(
            f"/console/accounts/{account.handle}/members/", {"email": email, "role": "member"}
        )
        assert response.status_code == 422
        alert = response.content.decode().split('<div class="error" role="alert">')[1].split("</div>")[0]
        assert (
            f"plan allows {seats} seats; this account has {seats}. Upgrade the plan or free one up." in alert
        )
        assert User.objects.count() == users and not User.objects.filter(email__iexact=email).exists()
        assert AccountMembership.objects.filter(account=account).count() == seats
        assert not Invitation.objects.filter(account=account).exists()
        assert not SeatLedgerEntry.objects.filter(account=account).exists()
        assert not audited(account, "invitation.sent") and not audited(account, "billing.seats-changed")

    def test_the_ledger_names_the_console_as_the_door(self, db):
        org = make_org(plan="team")
        browser = session(org.admin)
        assert (
            browser.post(org.url("members/"), {"email": "kept@example.test", "role": "member"}).status_code
            == 302
        )
        assert (
            browser.post(org.url("members/"), {"email": "gone@example.test", "role": "member"}).status_code
            == 302
        )
        revoked = Invitation.objects.get(account=org.account, email="gone@example.test")
        assert browser.post(org.url(f"invitations/{revoked.pk}/revoke")).status_code == 302
        removed = membership_of(org, org.member)
        assert browser.post(org.url(f"members/{removed.pk}/remove")).status_code == 302
        rows = list(SeatLedgerEntry.objects.filter(account=org.account).order_by("occurred"))
        assert [(row.door, row.seats_before, row.seats_after) for row in rows] == [
            ("console", 3, 4),
            ("console", 4, 5),
            ("console", 5, 4),
            ("console", 4, 3),
        ]
        assert all(row.actor_label == org.admin.email for row in rows)
        assert "kept@example.test" in rows[0].reason and org.member.email in rows[3].reason
        # The account API keeps its own door.
        MembershipFactory(account=org.account, user=(other := UserFactory()), role=AccountRole.MEMBER)
        membership_remove(membership=membership_of(org, other), actor=org.admin)
        assert SeatLedgerEntry.objects.filter(account=org.account).latest("occurred").door == "api"


def member_row(html: str, membership: AccountMembership) -> str:
    start = html.index(f'<tr id="member-{membership.pk}">')
    return html[start : html.index("</tr>", start)]


class TestSignInLabels:
    """How each person signs in, as the Members page labels it: someone who signed in through the
    account's identity provider (a real OIDC sign-in at the npm ``oidc-provider`` peer) is "SSO",
    someone the IdP provisions over SCIM (the SCIM API with a token) "SCIM-managed", the rest
    "Password"."""

    def test_sso_and_scim_managed_people(self, web, acme, oidc):  # noqa: F811
        from accounts.scim.services import scim_token_create
        from tests.accounts.sso.conftest import oidc_idp, oidc_sign_in
        from tests.accounts.test_scim import Scim, create_user

        admin = UserFactory(email="admin@acme.example")
        MembershipFactory(account=acme.account, user=admin, role=AccountRole.ADMIN)
        idp = oidc_idp(acme.account, oidc)
        assert oidc_sign_in(web, idp, oidc, "alice").status_code == 302
        _, raw = scim_token_create(account=acme.account, actor=SYSTEM, name="okta")
        create_user(Scim(acme.account, raw), email="carol@acme.example")

        html = session(admin).get(f"/console/accounts/{acme.account.handle}/members/").content.decode()
        alice = AccountMembership.objects.get(account=acme.account, user__email="alice@acme.example")
        carol = AccountMembership.objects.get(account=acme.account, user__email="carol@acme.example")
        mine = AccountMembership.objects.get(account=acme.account, user=admin)
        assert "<td>SSO</td>" in member_row(html, alice)
        assert "<td>SCIM-managed</td>" in member_row(html, carol)
        assert "<td>Password</td>" in member_row(html, mine)


class TestInvitationSso:
    """The invitation's page offers the account's SSO when the invited address is in a domain it
    verified and it has an enabled identity provider; the sign-in there accepts the invitation."""

    def _invite(self, account, email="alice@acme.example"):
        from accounts.rbac import invitation_create

        invitation, token = invitation_create(
            account=account, email=email, account_role=AccountRole.ADMIN, actor=SYSTEM
        )
        return invitation, token, f"/console/invitations/{invitation.pk}/accept?token={token}"

    def test_the_sso_button_is_offered_and_signing_in_there_accepts(self, web, acme, oidc):  # noqa: F811
        from accounts.sso.providers import provider_update
        from tests.accounts.sso.conftest import location_path, oidc_idp

        idp = oidc_idp(acme.account, oidc)
        invitation, token, link = self._invite(acme.account)
        page = web.get(link).content.decode()
        assert "Sign in with your organisation's SSO" in page
        assert f'action="/sso/login/{idp.pk}/"' in page
        members = f"/console/accounts/{acme.account.handle}/members/"
        assert f'name="next" value="{members}"' in page
        assert "and requires it" not in page and "Create my user and join" in page

        # The button's form, as the browser posts it, through the provider's real sign-in.
        start = web.post(f"/sso/login/{idp.pk}/", {"next": members, "idp": str(idp.pk)})
        assert start.status_code == 302
        callback = oidc.login_via_http(start["Location"], "alice", "any password")
        done = web.get(location_path({"Location": callback}))
        assert done.status_code == 302 and done["Location"] == members
        invitation.refresh_from_db()
        assert invitation.status == Invitation.Status.ACCEPTED
        assert membership_of_email(acme.account, "alice@acme.example").role == AccountRole.ADMIN

        # Enforced: the page says SSO is required.
        _, _, link = self._invite(acme.account, email="bob@acme.example")
        acme.account.settings = {**(acme.account.settings or {}), "enforce_sso": True}
        acme.account.save(update_fields=["settings"])
        assert "and requires it" in Client().get(link).content.decode()
        acme.account.settings = {**acme.account.settings, "enforce_sso": False}
        acme.account.save(update_fields=["settings"])
        provider_update(provider=idp, body={"enabled": False}, actor=SYSTEM)
        assert "organisation's SSO" not in Client().get(link).content.decode()

    def test_not_offered_outside_the_verified_domains_nor_on_a_wrong_token(self, db):
        from accounts.sso.providers import provider_create
        from tests.accounts.sso.conftest import verified_domain
        from tests.accounts.test_sso_providers import oidc_body

        org = make_org()
        verified_domain(org.account, "acme.example")
        provider_create(account=org.account, body=oidc_body(), actor=SYSTEM)
        _, _, link = self._invite(org.account)
        assert "organisation's SSO" in Client().get(link).content.decode()
        assert "organisation's SSO" not in Client().get(link + "x").content.decode()
        _, _, elsewhere = self._invite(org.account, email="ada@elsewhere.example")
        page = Client().get(elsewhere).content.decode()
        assert "organisation's SSO" not in page and "Create my user and join" in page
        # Another account's verified domain does not route this account's invitation.
        other = make_org()
        verified_domain(other.account, "other.example")
        provider_create(account=other.account, body=oidc_body(), actor=SYSTEM)
        _, _, theirs = self._invite(org.account, email="eve@other.example")
        assert "organisation's SSO" not in Client().get(theirs).content.decode()


def membership_of_email(account, email: str) -> AccountMembership:
    return AccountMembership.objects.get(account=account, user__email=email)
