"""Run the real ``prefect`` CLI from a given directory: ``python parity_cli_in.py DIR deploy …``
(``prefect deploy`` reads ``prefect.yaml`` and the entrypoint from the working directory)."""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    os.chdir(sys.argv[1])
    from prefect.cli import app

    sys.argv = ["prefect", *sys.argv[2:]]
    app()
