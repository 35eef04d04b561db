"""The social-auth pipeline steps of an SSO sign-in (``SOCIAL_AUTH_PIPELINE`` in settings).

After social-core has validated the assertion or id_token:

1. ``check_identity``: the IdP is enabled, the plan has SSO, the identity has an email address and
   the address is in a domain the IdP's account has verified. That is what lets an account's IdP
   speak for an address at all: a domain is verified for one account at most, so account A's IdP can
   never sign anyone in as an address of account B's domains (and there is no association by email
   across accounts).
2. social-core's ``social_user``: the person already linked to ``<idp id>:<subject>``, if any.
3. ``resolve_user``: otherwise the person with that address (the verified domain makes the link
   safe), or a new person (just-in-time); either way made a member if they are not one: through
   the pending invitation to their address when there is one (its role and workspace grants, the
   seat it held), else with the default role when a seat is free, or refused with nothing created.
4. social-core's ``associate_user`` links the identity; ``sync_groups`` applies the group mappings.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from accounts.models import AccountMembership, SsoDomain, User
from accounts.permissions import AccountRole
from accounts.rbac import invitation_accept_on_sign_in
from accounts.services import membership_add
from accounts.sso.errors import SsoRefused
from accounts.sso.mappings import group_mappings_apply
from audit import events
from audit.services import audit_record
from billing import entitlements
from billing.models import Door
from core.errors import PlanLimitExceeded

# social_django's UserSocialAuth.uid column.
UID_MAX_LENGTH = 255
EMAIL_MAX_LENGTH = 254  # RFC 5321's path limit, as Django's EmailValidator


def _unverified(value) -> bool:
    """``email_verified`` says no: false, or the strings some providers send (Cognito: "false")."""
    if value is False:
        return True
    return isinstance(value, str) and value.strip().lower() in ("false", "0", "no")


def check_identity(backend, details, *args, uid=None, **kwargs):
    provider = backend.provider
    account = provider.account
    if not provider.enabled:
        raise SsoRefused("provider_disabled", f"The identity provider {provider.name} is turned off.")
    if not entitlements.check_feature(account, "sso"):
        raise SsoRefused(
            "plan", f"Single sign-on is not available on the {entitlements.plan_for(account).name} plan."
        )
    email = (details.get("email") or "").strip()
    if not email or "@" not in email or any(c.isspace() for c in email):
        raise SsoRefused("no_email", "The identity provider did not send an email address.")
    try:
        validate_email(email)
    except ValidationError:
        raise SsoRefused(
            "invalid_email", f"The identity provider sent {email[:100]!r}, which is not an email address."
        ) from None
    if len(email) > EMAIL_MAX_LENGTH:
        raise SsoRefused("invalid_email", "The identity provider sent an email address that is too long.")
    if _unverified(details.get("email_verified")):
        raise SsoRefused("email_unverified", "The identity provider says this email address is unverified.")
    if uid is not None and len(str(uid)) > UID_MAX_LENGTH:
        raise SsoRefused(
            "invalid_subject",
            "The identity provider named this person with an identifier too long to keep "
            f"(NameID or sub over {UID_MAX_LENGTH - 37} characters).",
        )
    email = User.objects.normalize_email(email)
    domain = email.rsplit("@", 1)[1].lower()
    if not SsoDomain.objects.filter(account=account, domain=domain, verified_at__isnull=False).exists():
        raise SsoRefused(
            "unverified_domain",
            f"{domain} is not a verified domain of {account.name}, so its identity provider cannot "
            "sign in this address.",
            email=email,
        )
    backend.sso_email = email
    return {"sso_email": email}


def resolve_user(backend, details, sso_email, user=None, *args, **kwargs):
    provider = backend.provider
    account = provider.account
    if user is None:
        user = User.objects.filter(email__iexact=sso_email).first()
    if user is not None and not user.is_active:
        raise SsoRefused("deactivated", f"{user.email} is deactivated.", email=sso_email)
    membership = (
        AccountMembership.objects.filter(account=account, user=user).first() if user is not None else None
    )
    created = False
    if membership is None:
        try:
            with transaction.atomic():
                if user is None:
                    user = User.objects.create_user(
                        sso_email,
                        None,
                        first_name=(details.get("first_name") or "")[:150],
                        last_name=(details.get("last_name") or "")[:150],
                    )
                    created = True
                # A pending invitation to this address is accepted (its role and workspace grants,
                # the seat it held); otherwise a plain member, which locks the account and takes a
                # seat, or refuses (and the new user rolls back).
                invited = invitation_accept_on_sign_in(account=account, user=user)
                if invited is None:
                    membership_add(
                        account=account, user=user, role=AccountRole.MEMBER, actor=user, door=Door.SSO
                    )
                audit_record(
                    event=events.SSO_USER_PROVISIONED,
                    actor=user,
                    account=account,
                    target=user,
                    payload={
                        "provider_id": str(provider.id),
                        "provider": provider.name,
                        "new_user": created,
                        "invitation_accepted": invited is not None,
                    },
                )
        except PlanLimitExceeded:
            raise SsoRefused(
                "no_seat",
                f"{account.name} is out of seats, so no account could be made for {sso_email}. "
                f"Ask an administrator of {account.name} to free a seat or upgrade the plan.",
                email=sso_email,
            ) from None
    backend.sso_provisioned = membership is None
    return {"user": user, "is_new": created}


def sync_groups(backend, details, user, *args, **kwargs):

    groups = details.get("groups")
    if groups is not None:
        group_mappings_apply(account=backend.provider.account, user=user, groups=groups)
    backend.sso_groups = groups
