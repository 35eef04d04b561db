"""Orchestration rules, one module per rule family (``base`` holds the context and the rule
machinery). Rules take Prefect's vocabulary from ``orchestration.schemas``, write through
``orchestration.persistence`` and record events through ``orchestration.events.services``; they
never import services or the api."""
