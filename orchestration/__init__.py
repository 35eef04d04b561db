"""Orchestration: Prefect's server, mirrored. The unmodified ``prefect`` client talks to the wire
API under ``/api/accounts/<account>/workspaces/<workspace>/``.

Layers, top to bottom (``.importlinter`` holds them; a module imports only the layers below it):

* ``api/`` (views, routes and wire shapes, one folder per resource), ``urls.py`` (the route entry
  point), ``tasks.py`` (thin Celery wrappers), and the events routes and websockets
  (``events.api``, ``events.urls``, ``events.consumers``, ``events.auth``);
* ``services/``: the only writers (``set_flow_run_state`` in ``services/orchestration.py`` is the
  one way a run changes state);
* ``policies.py``: ordered lists of rules (order is behaviour);
* ``rules/``: one module per rule family;
* ``events.services`` and ``events.recorder``: storing and publishing events (the instrumentation
  rule records state events through them);
* ``selectors/`` and ``events.selectors``: reads and the filter grammars (``events.filters``);
* ``persistence/``: row-level writes the rules and services share (the write batch of a state
  change, the compiled run lock, slot arithmetic of concurrency limits);
* ``schemas/`` and ``events.schemas``: Prefect's vocabulary (states, request bodies, responses);
* ``models/``: fields and constraints; every model is workspace-scoped.

Imports are module-level; the one function-level import is the app's ``ready()``, which needs the
app registry.
"""
