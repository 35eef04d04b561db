"""Events: Prefect's ``/events`` routes and ``events/in``/``events/out`` websockets (``api``,
``urls``, ``consumers``, ``auth``), storage and publishing (``services``, with ``recorder``
building task runs from the client's task-run events), reads (``selectors``, ``filters``) and
shapes (``schemas``). They follow orchestration's layers: the schemas, selectors and services
never import ``orchestration.api``; the routes and consumers may use the services."""
