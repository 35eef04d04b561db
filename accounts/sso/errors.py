"""Why an SSO sign-in was refused: a reason code for the audit log, a sentence for the person."""

from __future__ import annotations


class SsoRefused(Exception):
    def __init__(self, reason: str, message: str, *, email: str | None = None, status: int = 403):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.email = email
        self.status = status


# Titles of the refusal page, by reason; anything else is "Sign-in failed".
TITLES = {
    "no_seat": "No free seat",
    "unverified_domain": "Address not covered by this identity provider",
    "deactivated": "Account deactivated",
    "plan": "Single sign-on unavailable",
    "provider_disabled": "Identity provider turned off",
    "invalid_email": "Not an email address",
    "invalid_subject": "Identity not accepted",
}
