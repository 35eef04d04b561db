"""The server-rendered console for people signed in with a browser session.

It stands on the access gate like the APIs (``access.gate``: the IP allowlist and SSO steps decide
which accounts a session may act in) and reads through selectors and writes through the same
services as the API. Today it is the signed-in landing page; the admin console grows here.
"""
