"""A fresh PostgreSQL database for a benchmark that drives Django in-process: created, migrated,
handed to ``run(args)``, and dropped at the end whatever happens."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def add_database_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")


def run_in_fresh_database(args, run: Callable, *, prefix: str) -> None:
    base, _, _ = args.database_url.rpartition("/")
    db_name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    subprocess.run(["psql", args.database_url, "-qc", f'CREATE DATABASE "{db_name}"'], check=True)
    try:
        os.environ.update(
            DATABASE_URL=f"{base}/{db_name}",
            REDIS_URL=args.redis_url,
            SECRET_KEY="bench-" + uuid.uuid4().hex * 2,
            ALLOWED_HOSTS="testserver",
            DJANGO_SETTINGS_MODULE="config.settings.base",
            DATABASE_POOL="false",
            DATABASE_CONN_MAX_AGE="600",
        )
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        run(args)
    finally:
        if "django" in sys.modules:
            from django.db import connections

            connections.close_all()
        subprocess.run(
            ["psql", args.database_url, "-qc", f'DROP DATABASE IF EXISTS "{db_name}"'], check=False
        )
