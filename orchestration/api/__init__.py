"""The Prefect wire API: views, routes and wire shapes only, one folder per resource
(``flows``, ``flow_runs``, ``task_runs``, ``logs``, ``artifacts``, ``variables``, ``deployments``,
``work_pools``, ``concurrency``, ``meta``), each with ``views.py``, ``urls.py`` and, where it
answers rows, ``wire.py`` (rows → Prefect's response shapes, byte for byte what Prefect's server
answers). ``base.py`` holds the view base and body parsing; ``poll_fast_path.py`` answers worker
polls before Django. Views parse, call one service or selector, and render; nothing below the api
imports it."""
