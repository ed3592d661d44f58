"""Getting a table: an explicit local file, the local cache, the packaged copy, the online source.

`load_table(target, table_file)` tries them in that order and returns the first that works; a
table from the packaged copy or a download is written to the cache, so the next load (also in the
build's worker processes) is local and fast (an explicit file is not cached: it is read again, from
the spec, wherever it is needed). With none available it raises one UsageError line that names the
three ways to get the table.

Settings (environment variables, so spawned workers and Prefect processes see the same ones):

  LLM_ERM_TABLE_CACHE       the cache directory (default $XDG_CACHE_HOME/llm-erm/tables, ~/.cache/...)
  LLM_ERM_TABULAR_SOURCES   harvested package files (default <venv>/share/llm-erm/tabular-sources)
  LLM_ERM_OFFLINE=1         never download
  LLM_ERM_UCI_URL           UCI's API base (default https://archive.ics.uci.edu/api)
  LLM_ERM_OPENML_URL        OpenML's JSON API base (default https://api.openml.org/api/v1/json)
  LLM_ERM_DOWNLOAD_TIMEOUT  seconds per request (default 60)

Online, UCI is spoken to directly over its JSON API, the way `ucimlrepo` does it (GET
`{base}/dataset?id=N`, then the CSV at the reply's `data.data_url`), but with a timeout on every
request and a base URL that can point at a mirror; OpenML likewise (GET `{base}/data/N`, then the
ARFF at `data_set_description.url`).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from llm_erm.datasets.tabular import packaged
from llm_erm.datasets.tabular.table import (
    Table,
    build_table,
    read_arff,
    read_cache,
    read_delimited,
    read_file,
    write_cache,
)
from llm_erm.datasets.tabular.tables import TableDef, get_table
from llm_erm.errors import UsageError

UCI_URL = "https://archive.ics.uci.edu/api"
OPENML_URL = "https://api.openml.org/api/v1/json"
USER_AGENT = "llm-erm (tabular loader)"


@dataclass(frozen=True)
class Settings:
    cache_dir: Path
    sources_dir: Path
    offline: bool
    uci_url: str
    openml_url: str
    timeout_s: float

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        cache = env.get("LLM_ERM_TABLE_CACHE")
        if cache:
            cache_dir = Path(cache).expanduser()
        else:
            base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
            cache_dir = Path(base) / "llm-erm" / "tables"
        try:
            timeout = float(env.get("LLM_ERM_DOWNLOAD_TIMEOUT", "60"))
        except ValueError:
            raise UsageError("LLM_ERM_DOWNLOAD_TIMEOUT must be a number of seconds") from None
        return cls(
            cache_dir=cache_dir,
            sources_dir=packaged.sources_dir(),
            offline=env.get("LLM_ERM_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"),
            uci_url=env.get("LLM_ERM_UCI_URL", UCI_URL).rstrip("/"),
            openml_url=env.get("LLM_ERM_OPENML_URL", OPENML_URL).rstrip("/"),
            timeout_s=timeout,
        )


_memo: dict[tuple, Table] = {}
_memo_lock = threading.Lock()


def forget_loaded_tables() -> None:
    """Drop this process's memory of loaded tables (the next load goes through the sources again)."""
    with _memo_lock:
        _memo.clear()


def load_table(target: str, table_file: str | os.PathLike | None = None) -> Table:
    """The canonical table of a tabular target (id or name), from the first source that has it."""
    definition = get_table(target)
    settings = Settings.from_env()
    path = Path(table_file).expanduser().resolve() if table_file else None
    stamp = None
    if path is not None:
        try:
            stat = path.stat()
        except OSError:
            raise UsageError(f"table file {table_file} for {definition.target_id} not found: check the path") from None
        stamp = (stat.st_mtime_ns, stat.st_size)
    key = (definition.target_id, str(path), stamp, settings)
    with _memo_lock:
        if key in _memo:
            return _memo[key]
    table = _load(definition, path, settings)
    with _memo_lock:
        _memo[key] = table
    return table


def _load(definition: TableDef, path: Path | None, settings: Settings) -> Table:
    if path is not None:
        file_sha = hashlib.sha256(path.read_bytes()).hexdigest()
        source = {"kind": "file", "file": path.name, "file_sha256": file_sha, "licence": definition.licence}
        # Not cached: the file is the local copy, and a later run without it must not silently
        # pick up whatever a one-off file held.
        return read_file(definition, path, source)
    cached = read_cache(settings.cache_dir, definition)
    if cached is not None:
        return cached
    found = packaged.locate(definition)
    if found is not None:
        paths, where = found
        package = definition.packaged.package
        source = {
            "kind": "package",
            "package": f"{package.name}=={package.version}",
            "found": where,
            "files": [m.path for m in definition.packaged.members],
            "files_sha256": [m.sha256 for m in definition.packaged.members],
            "package_licence": package.licence,
            "licence": definition.licence,
            "note": definition.packaged.note,
        }
        table = build_table(definition, packaged.read_packaged(definition, paths), source)
        write_cache(settings.cache_dir, table)
        return table
    reason = "offline (LLM_ERM_OFFLINE is set)" if settings.offline else None
    if not settings.offline and definition.online:
        try:
            table = _download(definition, settings)
        except _Unavailable as exc:
            reason = str(exc)
        else:
            write_cache(settings.cache_dir, table)
            return table
    raise UsageError(unavailable_message(definition, settings, reason))


def unavailable_message(definition: TableDef, settings: Settings, reason: str | None) -> str:
    """One line: what is missing, why, and the three ways to get the table."""
    what = f"{definition.target_id} ({definition.name}) needs the table {definition.title}"
    why = f", which is not available: {reason}" if reason else ", which is not available here"
    local = f"pass a local copy with --table-file {definition.target_id}=PATH (CSV with a header, the original file, or ARFF)"
    if definition.packaged:
        package = definition.packaged.package
        second = f"install the packaged copy ({package.name}=={package.version}) with `scripts/setup --tabular` " \
                 "or `llm-erm datasets sources --install`"
    else:
        second = f"copy a prepared {definition.name}.csv/.json into the table cache {settings.cache_dir} " \
                 "(LLM_ERM_TABLE_CACHE)"
    online = f"or allow the download from {definition.online} (unset LLM_ERM_OFFLINE; needs the network)"
    return f"{what}{why}; {local}, {second}, {online}"


# ---------------------------------------------------------------- online


class _Unavailable(Exception):
    """The online source could not deliver the table (the reason is the message)."""


def _get(url: str, timeout_s: float, what: str) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as reply:
            return reply.read()
    except urllib.error.HTTPError as exc:
        raise _Unavailable(f"{what} answered HTTP {exc.code} for {url}") from None
    except urllib.error.URLError as exc:
        raise _Unavailable(f"cannot reach {what} at {url} ({getattr(exc, 'reason', exc)})") from None
    except (TimeoutError, OSError) as exc:
        raise _Unavailable(f"cannot reach {what} at {url} ({exc.__class__.__name__}: {exc})") from None


def _json(data: bytes, what: str) -> dict:
    try:
        value = json.loads(data)
    except ValueError:
        raise _Unavailable(f"{what} did not answer with JSON") from None
    if not isinstance(value, dict):
        raise _Unavailable(f"{what} answered with unexpected JSON")
    return value


def _download(definition: TableDef, settings: Settings) -> Table:
    if definition.uci_id is not None:
        return _from_uci(definition, settings)
    return _from_openml(definition, settings)


def _from_uci(definition: TableDef, settings: Settings) -> Table:
    url = f"{settings.uci_url}/dataset?" + urllib.parse.urlencode({"id": definition.uci_id})
    reply = _json(_get(url, settings.timeout_s, "UCI"), "UCI")
    data = reply.get("data") if isinstance(reply.get("data"), dict) else {}
    if reply.get("status") != 200 or not data.get("data_url"):
        raise _Unavailable(f"UCI has no downloadable dataset {definition.uci_id} ({reply.get('message') or 'no data_url'})")
    data_url = str(data["data_url"])
    content = _get(data_url, settings.timeout_s, "UCI")
    source = {"kind": "uci", "dataset": definition.uci_id, "url": data_url,
              "sha256": hashlib.sha256(content).hexdigest(), "licence": definition.licence}
    return build_table(definition, read_delimited(definition, content, f"UCI dataset {definition.uci_id}"), source)


def _from_openml(definition: TableDef, settings: Settings) -> Table:
    url = f"{settings.openml_url}/data/{definition.openml_id}"
    reply = _json(_get(url, settings.timeout_s, "OpenML"), "OpenML")
    description = reply.get("data_set_description")
    if not isinstance(description, dict) or not (description.get("url") or description.get("file_id")):
        raise _Unavailable(f"OpenML has no downloadable dataset {definition.openml_id}")
    file_url = str(description.get("url") or f"https://api.openml.org/data/v1/download/{description['file_id']}")
    content = _get(file_url, settings.timeout_s, "OpenML")
    source = {"kind": "openml", "dataset": definition.openml_id, "url": file_url,
              "sha256": hashlib.sha256(content).hexdigest(),
              "licence": str(description.get("licence") or definition.licence)}
    return build_table(definition, read_arff(definition, content, f"OpenML dataset {definition.openml_id}"), source)


# ---------------------------------------------------------------- where each table would come from


def table_status(target: str) -> dict:
    """Where a table would load from now without a local file, without loading or downloading it."""
    definition = get_table(target)
    settings = Settings.from_env()
    if read_cache(settings.cache_dir, definition) is not None:
        where = "cache"
    elif (found := packaged.locate(definition)) is not None:
        where = f"package ({found[1]})"
    elif definition.online and not settings.offline:
        where = "online"
    else:
        where = "unavailable"
    return {
        "target": definition.target_id,
        "name": definition.name,
        "title": definition.title,
        "features": definition.n_features,
        "from": where,
        "packaged": (f"{definition.packaged.package.name}=={definition.packaged.package.version}"
                     if definition.packaged else None),
        "online": definition.online,
        "licence": definition.licence,
    }
