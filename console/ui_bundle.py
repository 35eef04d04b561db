"""Prefect's own UI, served from the installed ``prefect`` package under every workspace.

The package ships two built bundles (``prefect/server/ui``, the Vue UI Prefect calls V1, and
``prefect/server/ui-v2``, the React UI). Prefect's server copies one per base path and replaces the
placeholder ``/PREFECT_UI_SERVE_BASE_REPLACE_PLACEHOLDER`` with that base in every file. Here every
workspace has its own base (``/account/<a>/workspace/<w>``, as Prefect Cloud's UI), so the bundle
is prepared once for all of them, at start-up, into ``VAR_DIR/ui/<version>-<prefect version>-r<revision>``
(built in a temporary directory and renamed into place, so concurrent processes never see half a
copy), with gzip copies beside every compressible file. In the copy, the placeholder is replaced
according to what follows it:

* ``/PLACEHOLDER/…`` (CSS ``url()``, fonts, Vite's preload helper ``\\`/PLACEHOLDER/\\`+file``)
  names a file of the bundle: it becomes the shared asset path, ``/prefect-ui/<key>/…``;
* ``\\`/PLACEHOLDER\\``` (a whole template literal: the router's base in V1's entry chunk, the
  app base in V2's entry and ui-settings chunks) becomes an expression reading the entry
  document's ``<meta name="prefect-ui-base">``, which only the entry document sets, per workspace.

Anything else is refused at build time (``BundleLayoutChanged``), so a new ``prefect`` whose bundle
uses the placeholder differently fails loudly instead of loading assets from the wrong place.

The entry document (``index.html``) is kept outside the served tree as a template; ``entry_document``
fills in the workspace's base. Assets are served by WhiteNoise (``UiStaticFilesMiddleware``) under
``/prefect-ui/``: gzip when the browser accepts it, hashed files (``assets/name-<hash>.js``) cached
for a year as immutable, the others (icons, fonts) for WhiteNoise's default.
"""

from __future__ import annotations

import html
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from django.conf import settings
from whitenoise.compress import Compressor
from whitenoise.middleware import WhiteNoiseMiddleware

logger = logging.getLogger(__name__)

PLACEHOLDER = "/PREFECT_UI_SERVE_BASE_REPLACE_PLACEHOLDER"
ASSETS_URL = "/prefect-ui/"
BASE_META = "prefect-ui-base"
# Bumped when the rewrite below changes, so a copy made by an older rule is rebuilt.
REWRITE_REVISION = "1"
# What the router-base literal becomes: the per-workspace base the entry document names.
BASE_EXPRESSION = "`${globalThis.document?.querySelector('meta[name=\"" + BASE_META + '"]\')?.content??""}`'
TEXT_SUFFIXES = {".html", ".js", ".mjs", ".css", ".json", ".svg", ".txt", ".webmanifest", ".xml", ".map"}
HASHED_ASSET = re.compile(r"/assets/[^/]+-[A-Za-z0-9_-]{8}\.(?:js|css|woff2?|ttf|svg|png)$")
VERSIONS = ("v1", "v2")


class BundleLayoutChanged(RuntimeError):
    """The installed bundle uses the base-path placeholder in a way this rewrite does not know."""


@dataclass(frozen=True)
class Bundle:
    version: str  # "v1" or "v2"
    key: str  # "<version>-<prefect version>-r<revision>": the shared asset path's segment
    root: Path  # the served tree
    entry_template: str  # index.html with the asset path filled in and a slot for the base

    @property
    def assets_url(self) -> str:
        return f"{ASSETS_URL}{self.key}"


def _sources() -> dict[str, Path]:
    try:
        import prefect  # noqa: PLC0415 - optional at runtime: without it there is no UI to serve
    except ImportError:
        return {}
    found = {"v1": Path(prefect.__ui_static_path__), "v2": Path(prefect.__ui_v2_static_path__)}
    return {version: path for version, path in found.items() if (path / "index.html").is_file()}


def _prefect_version() -> str:
    import prefect  # noqa: PLC0415 - only reached when _sources() found it

    return prefect.__version__


def rewrite_asset(text: str, assets_url: str, name: str) -> str:
    """One file of the bundle with the placeholder replaced (module docstring)."""

    def replace(match: re.Match) -> str:
        following = match.group(1)
        if following == "/":
            return assets_url + "/"
        if following == "`" and match.string[match.start() - 1 : match.start()] == "`":
            return BASE_EXPRESSION[1:-1] + "`"
        raise BundleLayoutChanged(f"{name}: the base-path placeholder is followed by {following!r}")

    return re.sub(re.escape(PLACEHOLDER) + r"(.)", replace, text, flags=re.DOTALL)


def entry_template(index_html: str, assets_url: str) -> str:
    text = index_html.replace(PLACEHOLDER + "/", assets_url + "/")
    if PLACEHOLDER in text:
        raise BundleLayoutChanged("index.html: the base-path placeholder names something other than a file")
    # The root favicons are not under the placeholder in Prefect's index.html; the bundle has them.
    text = text.replace('href="/favicon.ico"', f'href="{assets_url}/ico/favicon.ico"')
    text = text.replace('href="/favicon-dark.ico"', f'href="{assets_url}/ico/favicon-dark.ico"')
    head = "<head>"
    if head not in text:
        raise BundleLayoutChanged("index.html has no <head>")
    return text.replace(head, head + f'\n    <meta name="{BASE_META}" content="{{base}}">', 1)


def _build(source: Path, target: Path, assets_url: str) -> None:
    """Copy ``source`` into ``target`` (which must not exist), rewritten and compressed."""
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=parent))
    try:
        served = work / "static"
        shutil.copytree(source, served)
        (served / "index.html").replace(work / "index.html")
        for path in served.rglob("*"):
            if path.is_file() and path.suffix in TEXT_SUFFIXES:
                text = path.read_text(encoding="utf-8")
                if PLACEHOLDER in text:
                    path.write_text(rewrite_asset(text, assets_url, path.name), encoding="utf-8")
        index = (work / "index.html").read_text(encoding="utf-8")
        (work / "entry.html").write_text(entry_template(index, assets_url), encoding="utf-8")
        compressor = Compressor(use_brotli=False, quiet=True)
        for path in list(served.rglob("*")):
            if path.is_file() and compressor.should_compress(path.name):
                list(compressor.compress(str(path)))
        try:
            os.rename(work, target)
        except OSError:
            if not (target / "entry.html").is_file():
                raise
            # Another process built the same copy first: keep theirs.
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)


@cache
def bundles() -> dict[str, Bundle]:
    """The bundles the installed ``prefect`` ships, prepared (once per process, and once per
    ``VAR_DIR`` and ``prefect`` version on disk)."""
    sources = _sources()
    if not sources:
        return {}
    prefect_version = _prefect_version()
    found = {}
    for version, source in sources.items():
        key = f"{version}-{prefect_version}-r{REWRITE_REVISION}"
        target = Path(settings.VAR_DIR) / "ui" / key
        if not (target / "entry.html").is_file():
            logger.info("Preparing Prefect's %s UI from %s into %s", version, source, target)
            _build(source, target, f"{ASSETS_URL}{key}")
        found[version] = Bundle(
            version=version,
            key=key,
            root=target / "static",
            entry_template=(target / "entry.html").read_text(encoding="utf-8"),
        )
    return found


def entry_document(bundle: Bundle, base: str) -> str:
    """The bundle's entry document for the UI whose router base is ``base``."""
    return bundle.entry_template.replace("{base}", html.escape(base, quote=True), 1)


class UiStaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise for the static files, plus the prepared UI bundles under ``/prefect-ui/``."""

    def __init__(self, get_response=None, settings=settings):
        super().__init__(get_response, settings)
        for bundle in bundles().values():
            self.add_files(str(bundle.root), prefix=f"{ASSETS_URL.strip('/')}/{bundle.key}/")

    def immutable_file_test(self, path, url):
        if url.startswith(ASSETS_URL) and HASHED_ASSET.search(url):
            return True
        return super().immutable_file_test(path, url)
