#!/bin/sh
# One image, four roles: web (ASGI server), worker (Celery), beat (Celery beat), migrate.
# Anything else is run as given (e.g. `python manage.py createsuperuser`).
set -eu

if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
    # prometheus-client's multiprocess files must start empty with the processes that write them.
    rm -rf "${PROMETHEUS_MULTIPROC_DIR:?}"
    mkdir -p "${PROMETHEUS_MULTIPROC_DIR}"
fi

# The long-running roles check the settings first (Django's system checks, the Stripe settings'
# among them): a bad one stops the container with the check's message, not at the first request or
# task that reads it. The migrate role's own migrate runs the same checks.
check_settings() {
    python manage.py check --fail-level ERROR
}

case "${1:-web}" in
    web)
        check_settings
        exec uvicorn config.asgi:application \
            --host 0.0.0.0 --port "${PORT:-8000}" \
            --workers "${WEB_CONCURRENCY:-2}" \
            --lifespan off --no-access-log \
            --http core.serving:HttpProtocol
        ;;
    worker)
        check_settings
        exec celery -A config worker -l INFO --concurrency "${WORKER_CONCURRENCY:-2}"
        ;;
    beat)
        check_settings
        exec celery -A config beat -l INFO -s /tmp/celerybeat-schedule
        ;;
    migrate)
        # The schema owner migrates; the other roles connect as the application's role.
        if [ -n "${DATABASE_MIGRATE_URL:-}" ]; then
            DATABASE_URL="${DATABASE_MIGRATE_URL}"
            export DATABASE_URL
        fi
        exec python manage.py migrate --noinput
        ;;
    *)
        exec "$@"
        ;;
esac
