"""The only writers: functions with keyword-only arguments, named ``<entity>_<verb>``. Every state
change goes through ``orchestration.services.orchestration.set_flow_run_state``. Services import
policies, rules, selectors, persistence, schemas and models, never ``orchestration.api``."""
