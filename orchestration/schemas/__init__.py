"""Prefect's vocabulary, below everything but the models: the pydantic bodies services take
(states, flow runs, deployments and schedules, …), the settings a run carries, and what
orchestration answers (``SetStateStatus``, ``OrchestrationResult``). Schema modules import only
models, other schema modules and libraries: never persistence, selectors, rules, services or api."""
