"""The automation actions that leave the server: ``call-webhook`` (a Webhook block) and
``send-notification`` (a notification block: Slack, Microsoft Teams, Discord or Mattermost
webhook, PagerDuty, Opsgenie, Twilio SMS, custom webhook, or email through Django's mail backend),
as Prefect's ``CallWebhook`` and ``SendNotification`` act. Prefect's blocks deliver through Apprise;
each service here is sent the request Apprise sends it (address, authentication, body), through the
guarded client below instead of Apprise's own.

Every HTTP call goes through ``core.outbound``: internal addresses are refused after DNS and on
every redirect unless the operator allows them (``OUTBOUND_WEBHOOK_ALLOWED_CIDRS``), whatever the
block's own ``allow_private_urls`` says. The block's data is read with its secrets only here, to
make the call; what the action reports (its event payload, the log, the failure reason) holds
the status, a truncated answer and the answer's headers, never the block's URL, headers or secrets.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from django.conf import settings
from django.core.mail import EmailMessage

from core.errors import NotFound
from core.outbound import OutboundFailed, OutboundRefused, outbound_request
from core.parsers import storable
from orchestration.selectors.blocks import ResolvedDocument, block_document_get


class ActionFailed(Exception):
    """Prefect's ``ActionFailed``: the reason goes into ``prefect.automation.action.failed``."""


_REDACTED_HEADERS = {"authorization", "cookie", "set-cookie", "proxy-authorization", "x-api-key"}
NOTIFICATION_TYPES = (
    "slack-webhook", "ms-teams-webhook", "discord-webhook", "mattermost-webhook", "pager-duty-webhook",
    "opsgenie-webhook", "twilio-sms", "custom-webhook", "sendgrid-email",
)  # fmt: skip
#: The services' fixed addresses, by region where they have one (Apprise's).
SERVICE_URLS = {
    "discord": "https://discord.com/api/webhooks",
    "pagerduty-us": "https://events.pagerduty.com/v2/enqueue",
    "pagerduty-eu": "https://events.eu.pagerduty.com/v2/enqueue",
    "opsgenie-us": "https://api.opsgenie.com/v2/alerts",
    "opsgenie-eu": "https://api.eu.opsgenie.com/v2/alerts",
    "twilio": "https://api.twilio.com/2010-04-01/Accounts",
}
_USER_AGENT = "Prefect Notifications"
#: The action types that call out of the server.
OUTBOUND_ACTIONS = frozenset({"call-webhook", "send-notification"})


def _block(run: Any, *, field: str = "block_document_id") -> ResolvedDocument:
    try:
        resolved = block_document_get(include_secrets=True, id=run.action[field])
    except (NotFound, ValueError, KeyError) as error:
        raise ActionFailed("Block document not found") from error
    document = resolved.document
    run.related += [
        {"prefect.resource.id": f"prefect.block-document.{document.id}", "prefect.resource.role": "block",
         "prefect.resource.name": document.name},
        {"prefect.resource.id": f"prefect.block-type.{document.block_type.slug}",
         "prefect.resource.role": "block-type"},
    ]  # fmt: skip
    return resolved


#: What of a receiver's answer an action reports: its body's first characters, at most so many
#: headers, each value cut as long.
ANSWER_BODY_CHARS = 1000
ANSWER_HEADERS = 50


def _answer_details(run: Any, response) -> None:
    """The answer's status, start of body and headers, made storable: a receiver's answer may hold
    anything, a NUL character among it, which no event or row could keep."""
    headers = [(k, v) for k, v in response.headers.items() if k.lower() not in _REDACTED_HEADERS]
    run.details.update(
        {
            "status_code": response.status_code,
            "response_body": storable(response.text[:ANSWER_BODY_CHARS]),
            "response_headers": storable(dict(headers[:ANSWER_HEADERS]), limit=ANSWER_BODY_CHARS),
        }
    )


def call_webhook(run: Any) -> None:
    resolved = _block(run)
    if resolved.document.block_type.slug != "webhook":
        raise ActionFailed("The referenced block was not a webhook block")
    (payload,) = run.render(run.action.get("payload") or "")
    data = resolved.data
    try:
        response = outbound_request(
            str(data.get("method") or "POST"),
            str(data.get("url") or ""),
            headers={str(k): str(v) for k, v in (data.get("headers") or {}).items()},
            content=payload,
        )
    except (OutboundRefused, OutboundFailed) as error:
        raise ActionFailed(f"Webhook call failed: {error}") from error
    _answer_details(run, response)


# --- notifications ----------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{\{\s*([\w.\-]+)\s*\}\}")


def _apply_values(template: Any, values: dict[str, Any]) -> Any:
    """Prefect's ``apply_values`` for the custom webhook: ``{{ name }}`` placeholders replaced in
    every string; a string that is one placeholder takes the value itself."""
    if isinstance(template, dict):
        return {k: _apply_values(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [_apply_values(v, values) for v in template]
    if not isinstance(template, str):
        return template
    whole = _PLACEHOLDER.fullmatch(template.strip())
    if whole and whole.group(1) in values:
        return values[whole.group(1)]
    return _PLACEHOLDER.sub(
        lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), template
    )


def _post_json(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    return outbound_request(
        "POST", url, headers={"Content-Type": "application/json", "User-Agent": _USER_AGENT, **(headers or {})},
        content=json.dumps(body),
    )  # fmt: skip


def _required(data: dict[str, Any], *fields: str) -> list[str]:
    values = [str(data.get(field) or "").strip() for field in fields]
    missing = [field for field, value in zip(fields, values, strict=True) if not value]
    if missing:
        raise ActionFailed(f"The notification block has no {', '.join(missing)}")
    return values


def _names(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    return [str(v).strip() for v in value or [] if str(v).strip()]


def _discord(data: dict[str, Any], subject: str, body: str) -> list[Any]:
    webhook_id, token = _required(data, "webhook_id", "webhook_token")
    payload: dict[str, Any] = {"tts": bool(data.get("tts")), "wait": not data.get("tts"),
                               "content": f"**{subject}**\r\n{body}" if subject else body}  # fmt: skip
    if data.get("botname"):
        payload["username"] = str(data["botname"])
    if data.get("avatar_url"):
        payload["avatar_url"] = str(data["avatar_url"])
    return [_post_json(f"{SERVICE_URLS['discord']}/{webhook_id}/{token}", payload)]


def _mattermost(data: dict[str, Any], subject: str, body: str) -> list[Any]:
    hostname, token = _required(data, "hostname", "token")
    secure = data.get("secure", False)
    port = data.get("port") or (443 if secure else 8065)
    path = "/" + str(data.get("path") or "").strip("/") if data.get("path") else ""
    url = f"{'https' if secure else 'http'}://{hostname}:{port}{path}/hooks/{token}"
    payload: dict[str, Any] = {"text": f"###### {subject}\n{body}" if subject else body}
    if data.get("botname"):
        payload["username"] = str(data["botname"])
    return [_post_json(url, {**payload, **({"channel": channel} if channel else {})})
            for channel in _names(data.get("channels")) or [None]]  # fmt: skip


_PAGERDUTY_SEVERITY = {"info": "info", "success": "info", "warning": "warning", "failure": "critical"}


def _pagerduty(data: dict[str, Any], subject: str, body: str) -> list[Any]:
    integration_key, api_key = _required(data, "integration_key", "api_key")
    region = "eu" if data.get("region_name") == "eu" else "us"
    event: dict[str, Any] = {
        "summary": f"{subject}\n{body}" if subject else body,
        "severity": _PAGERDUTY_SEVERITY.get(str(data.get("notify_type") or "info"), "info"),
        "source": str(data.get("source") or "Prefect"),
        "component": str(data.get("component") or "Notification"),
    }
    if data.get("group"):
        event["group"] = str(data["group"])
    if data.get("class_id"):
        event["class"] = str(data["class_id"])
    if data.get("custom_details"):
        event["custom_details"] = {str(k): str(v) for k, v in dict(data["custom_details"]).items()}
    payload: dict[str, Any] = {"routing_key": integration_key, "payload": event, "client": "Prefect",
                               "event_action": "trigger"}  # fmt: skip
    if data.get("clickable_url"):
        payload["links"] = [{"href": str(data["clickable_url"])}]
    return [
        _post_json(SERVICE_URLS[f"pagerduty-{region}"], payload, {"Authorization": f"Token token={api_key}"})
    ]


def _priority(value: Any) -> int:
    try:
        return min(max(int(value), 1), 5)
    except (TypeError, ValueError):
        return 3


def _opsgenie(data: dict[str, Any], subject: str, body: str) -> list[Any]:
    (apikey,) = _required(data, "apikey")
    region = "eu" if data.get("region_name") == "eu" else "us"
    message = subject or body
    payload: dict[str, Any] = {
        "source": "Prefect", "message": message if len(message) <= 130 else f"{message[:127]}...",
        "description": body, "details": {"type": str(data.get("notify_type") or "info"),
                                         **{str(k): str(v) for k, v in dict(data.get("details") or {}).items()}},
        "priority": f"P{_priority(data.get('priority'))}",
    }  # fmt: skip
    for field in ("tags",):
        if _names(data.get(field)):
            payload[field] = _names(data[field])
    for field in ("alias", "entity"):
        if data.get(field):
            payload[field] = str(data[field])
    responders = (
        [{"type": "user", "username": n} for n in _names(data.get("target_user"))]
        + [{"type": "team", "name": n} for n in _names(data.get("target_team"))]
        + [{"type": "schedule", "name": n} for n in _names(data.get("target_schedule"))]
        + [{"type": "escalation", "name": n} for n in _names(data.get("target_escalation"))]
    )
    if responders:
        payload["responders"] = responders
    return [_post_json(SERVICE_URLS[f"opsgenie-{region}"], payload, {"Authorization": f"GenieKey {apikey}"})]


def _twilio(data: dict[str, Any], subject: str, body: str) -> list[Any]:
    sid, token, sender = _required(data, "account_sid", "auth_token", "from_phone_number")
    recipients = _names(data.get("to_phone_numbers"))
    if not recipients:
        raise ActionFailed("The notification block has no to_phone_numbers")
    credentials = base64.b64encode(f"{sid}:{token}".encode()).decode()
    headers = {"User-Agent": _USER_AGENT, "Authorization": f"Basic {credentials}",
               "Content-Type": "application/x-www-form-urlencoded"}  # fmt: skip
    text = f"{subject}\r\n{body}" if subject else body
    return [
        outbound_request("POST", f"{SERVICE_URLS['twilio']}/{sid}/Messages.json", headers=headers,
                         content=urlencode({"Body": text, "From": sender, "To": recipient}))
        for recipient in recipients
    ]  # fmt: skip


# Apprise's notification types: the image each links and (for a MessageCard) the card's colour.
_NOTIFY_TYPES = ("info", "success", "warning", "failure")
_NOTIFY_COLOURS = {"info": "#3AA3E3", "success": "#3AA35F", "warning": "#CACF29", "failure": "#A32037"}
_APPRISE_IMAGE = (
    "https://github.com/caronc/apprise/raw/master/apprise/assets/themes/default/apprise-{type}-{size}.png"
)
#: A Power Automate (Workflows) URL, Apprise's ``NotifyWorkflows.parse_native_url``.
_TEAMS_WORKFLOW = re.compile(
    r"^https?://[A-Z0-9_.-]+(:[1-9][0-9]{0,5})?(/powerautomate/automations/direct(/cu/[0-9]+)?)?"
    r"/workflows/[A-Z0-9_-]+/triggers/manual/paths/invoke/?\?.+$",
    re.IGNORECASE,
)
#: A legacy Office 365 connector URL (Apprise's retired ``msteams`` plugin).
_TEAMS_CONNECTOR = re.compile(
    r"^https://([A-Z0-9_-]+\.webhook|outlook)\.office\.com/webhook(b2)?/", re.IGNORECASE
)
_TEAMS_MENTION = re.compile(r"<at>([^<]+)</at>", re.IGNORECASE)


def _notify_type(data: dict[str, Any]) -> str:
    value = str(data.get("notify_type") or "info")
    return value if value in _NOTIFY_TYPES else "info"


def _teams_adaptive_card(data: dict[str, Any], subject: str, body: str) -> dict[str, Any]:
    """What Apprise's ``NotifyWorkflows`` posts (Prefect 3's ``MicrosoftTeamsWebhook`` sends
    through it): an Adaptive Card as a message attachment, with the block's ``include_image`` and
    ``wrap``, and a mention entity for each ``<at>name</at>`` in the body."""
    notify_type = _notify_type(data)
    content: list[dict[str, Any]] = []
    if data.get("include_image", True):
        content.append({"type": "Image", "url": _APPRISE_IMAGE.format(type=notify_type, size="32x32"),
                        "height": "32px", "altText": notify_type})  # fmt: skip
    if subject:
        content.append({"type": "TextBlock", "text": subject, "style": "heading", "weight": "Bolder",
                        "size": "Large", "id": "title"})  # fmt: skip
    content.append({"type": "TextBlock", "text": body, "style": "default", "wrap": bool(data.get("wrap", True)),
                    "id": "body"})  # fmt: skip
    mentions: dict[str, dict[str, Any]] = {}
    for match in _TEAMS_MENTION.finditer(body):
        key = match.group(1).strip()
        if key and key not in mentions:
            mentions[key] = {"type": "mention", "text": match.group(0), "mentioned": {"id": key, "name": key}}
    msteams: dict[str, Any] = {"width": "full"}
    if mentions:
        msteams["entities"] = list(mentions.values())
    card = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
            "version": "1.4", "body": content, "msteams": msteams}  # fmt: skip
    return {"type": "message",
            "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
                             "content": card}]}  # fmt: skip


def _teams_message_card(data: dict[str, Any], subject: str, body: str) -> dict[str, Any]:
    """What Apprise's ``msteams`` plugin posted to a legacy Office 365 connector: a MessageCard."""
    notify_type = _notify_type(data)
    image = _APPRISE_IMAGE.format(type=notify_type, size="72x72") if data.get("include_image", True) else None
    return {"@type": "MessageCard", "@context": "https://schema.org/extensions", "summary": _USER_AGENT,
            "themeColor": _NOTIFY_COLOURS[notify_type],
            "sections": [{"activityImage": image, "activityTitle": subject, "text": body}]}  # fmt: skip


def _teams(data: dict[str, Any], subject: str, body: str) -> Any:
    """A Power Automate (Workflows) URL, the one Prefect 3's block takes, is sent Apprise's Adaptive
    Card; a legacy connector URL (``….webhook.office.com``, which Prefect 3's block no longer
    takes) the MessageCard it was sent before; anything else fails with Prefect's reason."""
    url = str(data.get("url") or "").strip()
    if _TEAMS_WORKFLOW.match(url):
        return _post_json(url, _teams_adaptive_card(data, subject, body))
    if _TEAMS_CONNECTOR.match(url):
        return _post_json(url, _teams_message_card(data, subject, body))
    raise ActionFailed("Invalid Microsoft Teams Workflow URL provided.")


_SENDERS = {
    "discord-webhook": _discord,
    "mattermost-webhook": _mattermost,
    "pager-duty-webhook": _pagerduty,
    "opsgenie-webhook": _opsgenie,
    "twilio-sms": _twilio,
}


def _custom_webhook(data: dict[str, Any], subject: str, body: str) -> Any:
    values = {**(data.get("secrets") or {}), "subject": subject, "body": body, "name": data.get("name") or ""}
    url = str(_apply_values(data.get("url") or "", values))
    params = _apply_values(data.get("params"), values)
    if params:
        parts = urlsplit(url)
        query = "&".join(q for q in (parts.query, urlencode(params)) if q)
        url = urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
    headers = {"User-Agent": "Prefect Notifications"}
    headers.update({str(k): str(v) for k, v in (_apply_values(data.get("headers"), values) or {}).items()})
    cookies = _apply_values(data.get("cookies"), values)
    if cookies:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    content: str | None = None
    if data.get("json_data") is not None:
        headers.setdefault("Content-Type", "application/json")
        content = json.dumps(_apply_values(data["json_data"], values))
    elif isinstance(data.get("form_data"), str):
        content = _apply_values(data["form_data"], values)
    elif data.get("form_data") is not None:
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        content = urlencode(_apply_values(data["form_data"], values))
    timeout = float(data.get("timeout") or 10)
    return outbound_request(str(data.get("method") or "POST"), url, headers=headers, content=content,
                            timeout=min(timeout, 30.0))  # fmt: skip


def _email(data: dict[str, Any], subject: str, body: str) -> None:
    recipients = data.get("to_emails") or []
    if isinstance(recipients, str):
        recipients = [recipients]
    if not recipients:
        raise ActionFailed("The notification block has no recipients")
    sender = data.get("sender_email") or settings.DEFAULT_FROM_EMAIL
    EmailMessage(subject=subject, body=body, from_email=sender, to=list(recipients)).send()


def send_notification(run: Any) -> None:
    resolved = _block(run)
    document = resolved.document
    if "notify" not in (document.block_schema.capabilities or []):
        raise ActionFailed("The referenced block was not a notification block")
    subject, body = run.render(run.action.get("subject") or "", run.action.get("body") or "")
    slug, data = document.block_type.slug, resolved.data
    try:
        if slug == "slack-webhook":
            response = _post_json(str(data.get("url") or ""), {"text": f"*{subject}*\n{body}"})
        elif slug == "ms-teams-webhook":
            response = _teams(data, subject, body)
        elif slug in _SENDERS:
            # Each of several requests (a Mattermost channel, a Twilio recipient) is reported by the
            # first that failed, else the last.
            responses = _SENDERS[slug](data, subject, body)
            response = next((r for r in responses if r.status_code >= 400), responses[-1])
        elif slug == "custom-webhook":
            response = _custom_webhook(data, subject, body)
        elif slug == "sendgrid-email":
            # Delivered by the server's mail backend (EMAIL_* settings), not SendGrid's API.
            try:
                _email(data, subject, body)
            except (OSError, ValueError) as error:
                run.details["notification_log"] = f"{type(error).__name__}"
                raise ActionFailed("Notification failed") from error
            return
        else:
            raise ActionFailed(f"Notification blocks of type {slug!r} are not supported by this server")
    except (OutboundRefused, OutboundFailed) as error:
        run.details["notification_log"] = str(error)
        raise ActionFailed("Notification failed") from error
    _answer_details(run, response)
    if response.status_code >= 400:
        run.details["notification_log"] = f"The receiver answered {response.status_code}"
        raise ActionFailed("Notification failed")
