"""The SCIM 2.0 service provider (``/scim/v2/accounts/<account_id>/…``): the protocol's HTTP
surface, standing on the access gate (``access.gate.authorize_scim``: the account's SCIM token, the
plan, the IP allowlist) like the other APIs. The protocol itself (filters, PATCH, resources) and
the writes are ``accounts.scim``'s."""
