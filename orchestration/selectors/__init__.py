"""Reads: the filter grammar of the ``/filter`` and ``/count`` routes (``filters``) and the work
pool reads behind worker polls (``work_pools``). Selectors import persistence, schemas and models
only."""
