"""The import contracts in ``.importlinter`` hold, and the one that keeps the account API on top
names every module of ``accounts`` (so a new module cannot slip past it)."""

from __future__ import annotations

import configparser
import os
from pathlib import Path

from importlinter.application.use_cases import lint_imports
from importlinter.configuration import configure

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / ".importlinter"
ACCOUNT_API_CONTRACT = "importlinter:contract:account-api-on-top"
# The account API itself, and the route tables that mount its views.
MAY_IMPORT_THE_API = {"api", "urls", "workspace_urls"}


def test_every_import_contract_is_kept():
    configure()  # what the lint-imports command does first
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        kept = lint_imports(config_filename=str(CONFIG), cache_dir=None, no_logo=True)
    finally:
        os.chdir(cwd)
    assert kept, "an import contract is broken: run lint-imports"


def _accounts_modules() -> set[str]:
    names = set()
    for entry in (ROOT / "accounts").iterdir():
        if entry.is_dir() and (entry / "__init__.py").exists():
            names.add(entry.name)
        elif entry.suffix == ".py" and entry.name != "__init__.py":
            names.add(entry.stem)
    return names


def test_the_account_api_contract_names_every_other_module_of_accounts():
    config = configparser.ConfigParser()
    config.read(CONFIG)
    contract = config[ACCOUNT_API_CONTRACT]
    assert contract["type"] == "forbidden"
    assert contract["forbidden_modules"].split() == ["accounts.api"]
    listed = {name.removeprefix("accounts.") for name in contract["source_modules"].split()}
    assert listed == _accounts_modules() - MAY_IMPORT_THE_API
