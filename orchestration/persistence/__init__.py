"""Row-level writes shared by the rules and the services, below the selectors: the write batch
of a state change (``write_batch``), the compiled run lock (``run_lock``) and the slot
arithmetic of concurrency limits (``concurrency``). Persistence imports only models and
schemas."""
