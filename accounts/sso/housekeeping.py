"""Forgetting what single sign-on no longer needs (a Celery beat task, hourly): accepted assertion
ids once the assertion itself has expired (a replay would be refused as expired anyway), the
NameID/SessionIndex records of browser sessions that have ended, and OIDC nonces past their
lifetime."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.sessions.models import Session
from django.db.models import F
from django.utils import timezone
from social_django.models import Association

from accounts.models import SsoAssertion, SsoSession

# Kept this long past an assertion's NotOnOrAfter, beyond any clock skew allowed.
ASSERTION_GRACE = timedelta(hours=1)


def sso_purge_expired() -> int:

    now = timezone.now()
    removed, _ = SsoAssertion.objects.filter(expires_at__lt=now - ASSERTION_GRACE).delete()
    live = Session.objects.filter(expire_date__gt=now).values("session_key")
    ended, _ = SsoSession.objects.exclude(session_key__in=live).delete()
    nonces, _ = (
        Association.objects.annotate(ends=F("issued") + F("lifetime"))
        .filter(ends__lt=int(now.timestamp()))
        .delete()
    )
    return removed + ended + nonces
