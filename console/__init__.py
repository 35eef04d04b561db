"""The server-rendered console for people signed in with a browser session.

It stands on the access gate like the APIs (``access.gate``: the IP allowlist and SSO steps decide
which accounts a session may act in) and reads through selectors and writes through the same
services as the API: the signed-in landing page (``views``) and the admin console (``pages/``, one
module per area, each account page a ``pages.base.ConsolePage`` that declares the account
permission of every method; routes in ``urls``, mounted under ``/console/``).
"""
