"""Every audit event type the product records. Append; never renumber."""

from __future__ import annotations

from audit.registry import register

ACCOUNT_CREATED = register(
    id=1, name="ACCOUNT_CREATED", api_name="account.created", template="{actor} created account {target}"
)
WORKSPACE_CREATED = register(
    id=10,
    name="WORKSPACE_CREATED",
    api_name="workspace.created",
    template="{actor} created workspace {target}",
)
MEMBER_ADDED = register(
    id=20, name="MEMBER_ADDED", api_name="member.added", template="{actor} added {target} as {role}"
)
MEMBER_REMOVED = register(
    id=21, name="MEMBER_REMOVED", api_name="member.removed", template="{actor} removed {target}"
)
MEMBER_ROLE_CHANGED = register(
    id=22,
    name="MEMBER_ROLE_CHANGED",
    api_name="member.role-changed",
    template="{actor} changed the role of {target} from {old_role} to {role}",
)
WORKSPACE_ACCESS_GRANTED = register(
    id=30,
    name="WORKSPACE_ACCESS_GRANTED",
    api_name="workspace-access.granted",
    template="{actor} granted {role} on workspace {workspace} to {target}",
)
WORKSPACE_ACCESS_REVOKED = register(
    id=31,
    name="WORKSPACE_ACCESS_REVOKED",
    api_name="workspace-access.revoked",
    template="{actor} removed the access of {target} to workspace {workspace}",
)
SERVICE_ACCOUNT_CREATED = register(
    id=40,
    name="SERVICE_ACCOUNT_CREATED",
    api_name="service-account.created",
    template="{actor} created service account {target}",
)
SERVICE_ACCOUNT_DELETED = register(
    id=41,
    name="SERVICE_ACCOUNT_DELETED",
    api_name="service-account.deleted",
    template="{actor} deleted service account {target}",
)
API_KEY_CREATED = register(
    id=50, name="API_KEY_CREATED", api_name="api-key.created", template="{actor} created API key {target}"
)
API_KEY_REVOKED = register(
    id=51, name="API_KEY_REVOKED", api_name="api-key.revoked", template="{actor} revoked API key {target}"
)
ACCOUNT_PLAN_CHANGED = register(
    id=2,
    name="ACCOUNT_PLAN_CHANGED",
    api_name="account.plan-changed",
    template="{actor} changed the plan of {target} from {old_plan} to {plan}",
)
