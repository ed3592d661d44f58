"""The store: derived seed, ids, byte-identical rebuilds, hash-verified reuse, corrupt stores, user targets."""

from __future__ import annotations

import json
import random
import sys
import textwrap

import pytest

from llm_erm.datasets import DatasetSpec, build_dataset, dataset_status, open_dataset, validate_specs
from llm_erm.datasets.batch import build_all, make_specs
from llm_erm.errors import UsageError

SMALL = {"train_size": 20, "val_size": 20, "test_size": 200}


def files_of(dataset) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(dataset.path.iterdir())}


def test_derived_seed_matches_the_paper_formula() -> None:
    assert DatasetSpec("fn_a", 100, 100, 100, 10000, 42).derived_seed == 1680269424
    # train= in the key is train + val: moving examples between them keeps the seed.
    assert DatasetSpec("fn_a", 100, 150, 50).derived_seed == 1680269424
    assert DatasetSpec("parity_all", 100).derived_seed == 1680269424


def test_layout_line_format_and_meta(tmp_path) -> None:
    spec = DatasetSpec("fn_e", 30, **SMALL)
    dataset = build_dataset(spec, tmp_path)
    assert dataset.path == tmp_path / "parity_rand_3" / "L30" / f"seed{spec.derived_seed}"
    assert sorted(p.name for p in dataset.path.iterdir()) == ["meta.json", "test.txt", "train.txt", "val.txt"]
    text = (dataset.path / "train.txt").read_text(encoding="utf-8")
    assert text.endswith("\n") and len(text.splitlines()) == 20
    assert all(line[:30].strip("01") == "" and line[30:] in (" -> 0", " -> 1") for line in text.splitlines())
    assert dataset.split("train").lines == text.splitlines()
    meta = json.loads((dataset.path / "meta.json").read_text())
    assert meta == dataset.meta
    assert meta["target_id"] == "fn_e" and meta["target_name"] == "parity_rand_3"
    assert meta["derived_seed"] == spec.derived_seed and meta["length"] == 30
    assert meta["sizes"] == {"train": 20, "val": 20, "test": 200}
    assert meta["params"]["positions"] == [12, 0, 6]
    assert meta["dataset_id"] == spec.dataset_id == dataset.dataset_id
    assert set(meta["sha256"]) == {"train", "val", "test"}
    assert not [p for p in dataset.path.parent.iterdir() if p.name.startswith(".")], "temp dirs left behind"


def test_same_arguments_give_byte_identical_files(tmp_path) -> None:
    for target in ("fn_c", "fn_h", "fn_i", "fn_aa"):
        a = build_dataset(DatasetSpec(target, 40, **SMALL), tmp_path / "a")
        b = build_dataset(DatasetSpec(target, 40, **SMALL), tmp_path / "b")
        assert files_of(a) == files_of(b)


def test_a_different_seed_gives_different_data(tmp_path) -> None:
    a = build_dataset(DatasetSpec("fn_a", 30, seed=42, **SMALL), tmp_path)
    b = build_dataset(DatasetSpec("fn_a", 30, seed=43, **SMALL), tmp_path)
    assert a.path != b.path and a.dataset_id != b.dataset_id
    assert set(a.split("train").inputs).isdisjoint(b.split("train").inputs)


def test_dataset_id_depends_on_everything_that_shapes_the_data() -> None:
    base = DatasetSpec("fn_a", 30)
    variants = [DatasetSpec("fn_b", 30), DatasetSpec("fn_a", 25), DatasetSpec("fn_a", 30, 150, 50),
                DatasetSpec("fn_a", 30, test_size=500), DatasetSpec("fn_a", 30, seed=1)]
    ids = {base.dataset_id} | {v.dataset_id for v in variants}
    assert len(ids) == 6 and base.dataset_id == DatasetSpec("parity_all", 30).dataset_id


def test_an_intact_store_is_reused_without_rewriting(tmp_path) -> None:
    spec = DatasetSpec("fn_d", 25, **SMALL)
    first = build_dataset(spec, tmp_path)
    stamps = {p.name: p.stat().st_mtime_ns for p in first.path.iterdir()}
    again = build_dataset(spec, tmp_path)
    assert {p.name: p.stat().st_mtime_ns for p in again.path.iterdir()} == stamps
    assert open_dataset(spec, tmp_path).dataset_id == first.dataset_id


@pytest.mark.parametrize(
    "damage",
    ["truncate", "edit_label", "delete_split", "delete_meta", "bad_meta_json", "stale_generator"],
)
def test_a_damaged_store_is_detected_and_rebuilt(tmp_path, damage: str) -> None:
    spec = DatasetSpec("fn_a", 25, **SMALL)
    good = files_of(build_dataset(spec, tmp_path))
    path = spec.store_path(tmp_path)
    test_file, meta_file = path / "test.txt", path / "meta.json"
    if damage == "truncate":
        test_file.write_bytes(test_file.read_bytes()[:-100])
    elif damage == "edit_label":
        text = test_file.read_text()
        flipped = "0" if text[text.index(" -> ") + 4] == "1" else "1"
        test_file.write_text(text[: text.index(" -> ") + 4] + flipped + text[text.index(" -> ") + 5 :])
    elif damage == "delete_split":
        (path / "val.txt").unlink()
    elif damage == "delete_meta":
        meta_file.unlink()
    elif damage == "bad_meta_json":
        meta_file.write_text("{not json")
    else:
        meta = json.loads(meta_file.read_text())
        meta["dataset_id"] = "0" * 16  # as written by another generator version
        meta_file.write_text(json.dumps(meta))
    assert dataset_status(spec, tmp_path) == "corrupt"
    assert open_dataset(spec, tmp_path) is None
    rebuilt = build_dataset(spec, tmp_path)
    assert files_of(rebuilt) == good
    assert dataset_status(spec, tmp_path) == "built"
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name], "no temp or trash dirs left"


def test_missing_store_status(tmp_path) -> None:
    assert dataset_status(DatasetSpec("fn_a", 20), tmp_path) == "missing"
    assert open_dataset(DatasetSpec("fn_a", 20), tmp_path) is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (DatasetSpec("fn_zz", 20), "unknown target 'fn_zz'"),
        (DatasetSpec("fn_h", 30), "divisible by 4"),
        (DatasetSpec("fn_a", 20, train_size=101), "--train-size must be a positive even number"),
        (DatasetSpec("fn_a", 20, test_size=0), "--test-size"),
        (DatasetSpec("fn_a", 6), "only 32 distinct inputs"),
        (DatasetSpec("fn_g", 12), "only 64 distinct inputs with label 1"),
        (DatasetSpec("fn_i", 2), "only 27 distinct inputs with label 0"),
        (DatasetSpec("fn_aa", 23), "fn_aa"),
        (DatasetSpec("fn_c", 7), "length >= 8"),
    ],
)
def test_impossible_specs_are_refused_before_anything_is_written(tmp_path, spec, message) -> None:
    with pytest.raises(UsageError, match=message) as err:
        build_dataset(spec, tmp_path / "datasets")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "datasets").exists()


def test_make_specs_defaults_and_validation() -> None:
    specs = make_specs()
    assert len(specs) == 60 and {s.target for s in specs} == {f"fn_{c}" for c in "abcdefghijkl"}
    assert [s.length for s in specs if s.target == "fn_h"] == [100, 80, 60, 40, 20]
    assert [(s.target, s.length) for s in make_specs(["fn_a fn_c", "fn_a"], [20, 30])] == [
        ("fn_a", 20), ("fn_a", 30), ("fn_c", 20), ("fn_c", 30)]
    with pytest.raises(UsageError, match="divisible by 4"):
        make_specs(["fn_a", "fn_h"], [20, 30])
    validate_specs([])


def test_parallel_build_equals_sequential(tmp_path) -> None:
    specs = make_specs(["fn_a", "fn_i"], [20, 30], **SMALL)
    sequential = build_all(specs, tmp_path / "seq", workers=1)
    seen = []
    parallel = build_all(specs, tmp_path / "par", workers=2, on_done=lambda s, d, reused: seen.append(reused))
    assert [files_of(d) for d in sequential] == [files_of(d) for d in parallel]
    assert seen == [False] * 4
    build_all(specs, tmp_path / "par", workers=2, on_done=lambda s, d, reused: seen.append(reused))
    assert seen[4:] == [True] * 4


# ---------------------------------------------------------------- user targets


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A real importable module of user targets in a temporary directory."""
    root = tmp_path / "usermods"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))

    def write(name: str, source: str) -> str:
        (root / f"{name}.py").write_text(textwrap.dedent(source))
        sys.modules.pop(name, None)
        return name

    yield write


def test_a_user_target_goes_through_the_same_generator_and_store(tmp_path, user_module) -> None:
    module = user_module("my_targets_a", """
        def first_and_last(x):
            return int(x[0] == x[-1])

        def digit_sum_even(x):
            return sum(map(int, x)) % 2 == 0
    """)
    dataset = build_dataset(DatasetSpec(f"{module}:first_and_last", 24, **SMALL), tmp_path)
    assert dataset.path.parent.parent.name == f"{module}.first_and_last"
    test = dataset.split("test")
    assert sum(test.labels) == 100 and test.labels == [int(x[0] == x[-1]) for x in test.inputs]
    assert dataset.meta["params"]["source_sha256"]
    decimal = build_dataset(DatasetSpec(f"{module}:digit_sum_even", 12, alphabet="decimal", **SMALL), tmp_path)
    inputs = decimal.split("train").inputs
    assert set("".join(inputs)) - set("01"), "decimal inputs use all digits"
    assert decimal.split("train").labels == [int(sum(map(int, x)) % 2 == 0) for x in inputs]


def test_editing_a_user_target_changes_its_dataset_id(user_module) -> None:
    from llm_erm.datasets.custom import load_callable_target

    module = user_module("my_targets_b", "def f(x):\n    return x.count('1') > 3\n")
    before = DatasetSpec(f"{module}:f", 20).dataset_id
    load_callable_target.cache_clear()
    user_module("my_targets_b", "def f(x):\n    return x.count('1') > 4\n")
    assert DatasetSpec(f"{module}:f", 20).dataset_id != before


def test_a_constant_user_target_is_refused(tmp_path, user_module) -> None:
    module = user_module("my_targets_c", "def always_zero(x):\n    return 0\n")
    with pytest.raises(UsageError, match="never returned 1"):
        DatasetSpec(f"{module}:always_zero", 30).validate()
    with pytest.raises(UsageError, match="label 1"):  # short lengths are counted exactly
        DatasetSpec(f"{module}:always_zero", 12).validate()
    with pytest.raises(UsageError):
        build_dataset(DatasetSpec(f"{module}:always_zero", 30, **SMALL), tmp_path / "d")
    assert not (tmp_path / "d").exists()


def test_a_rare_class_that_the_probe_misses_is_still_refused_by_the_generator(user_module) -> None:
    from llm_erm.datasets.generators import class_sampler
    from llm_erm.datasets.splits import generate_splits

    module = user_module("my_targets_e", "def never(x):\n    return 0\n")
    target = DatasetSpec(f"{module}:never", 30).target_obj
    with pytest.raises(UsageError, match="only 0 distinct inputs with label 1"):
        generate_splits(class_sampler(target, 30, 1), class_sampler(target, 30, 0),
                        {"train": 4, "val": 4, "test": 4}, 0, "never")


@pytest.mark.parametrize(
    ("target", "message"),
    [("no_such_module_xyz:f", "cannot import module 'no_such_module_xyz'"),
     ("json:no_such_function", "has no attribute 'no_such_function'"),
     (":f", "module.path:callable")],
)
def test_unusable_user_targets_are_refused(target: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        DatasetSpec(target, 20).validate()


def test_user_target_alphabet_is_checked(user_module) -> None:
    module = user_module("my_targets_d", "def f(x):\n    return x[0] == '1'\n")
    with pytest.raises(UsageError, match="alphabet"):
        DatasetSpec(f"{module}:f", 20, alphabet="hex").validate()
    with pytest.raises(UsageError, match="fn_a"):
        DatasetSpec("fn_a", 20, alphabet="decimal").validate()
    # On the command line --alphabet is for the user targets of a mixed selection only.
    assert [s.alphabet for s in make_specs(["fn_a", f"{module}:f"], [20], alphabet="binary")] == [None, "binary"]


# ---------------------------------------------------------------- labelled-file targets


def write_labelled_csv(path, rows) -> str:
    path.write_text("input,label\n" + "".join(f"{x},{y}\n" for x, y in rows))
    return str(path)


def test_a_labelled_csv_file_is_a_target(tmp_path) -> None:
    rnd = random.Random(5)
    rows = {format(rnd.getrandbits(12), "012b"): 0 for _ in range(400)}
    rows = {x: int(x.count("1") > 6) for x in rows}
    path = write_labelled_csv(tmp_path / "majority.csv", rows.items())
    specs = make_specs([path], **SMALL)
    assert [(s.length, s.target_obj.alphabet) for s in specs] == [(12, "binary")]
    dataset = build_dataset(specs[0], tmp_path / "d")
    assert dataset.path.parent.parent.name.startswith("file-majority-")
    seen = {}
    for split in ("train", "val", "test"):
        s = dataset.split(split)
        assert sum(s.labels) * 2 == len(s.labels)
        assert all(rows[x] == y for x, y in zip(s.inputs, s.labels, strict=True))
        seen[split] = set(s.inputs)
    assert not (seen["train"] | seen["val"]) & seen["test"] and not seen["train"] & seen["val"]
    # Same file -> same data; an edited file -> a different dataset id (never stale labels).
    assert files_of(build_dataset(make_specs([path], **SMALL)[0], tmp_path / "e")) == files_of(dataset)
    rows[next(iter(rows))] ^= 1
    write_labelled_csv(tmp_path / "majority.csv", rows.items())
    from llm_erm.datasets.custom import load_file_target

    load_file_target.cache_clear()
    assert make_specs([path], **SMALL)[0].dataset_id != dataset.dataset_id


def test_a_labelled_parquet_file_is_a_target(tmp_path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    inputs = [f"{n:05d}" for n in range(10000, 10400)]
    path = tmp_path / "even.parquet"
    pq.write_table(pa.table({"input": inputs, "label": [int(x) % 2 for x in inputs]}), path)
    (spec,) = make_specs([str(path)], **SMALL)
    assert spec.target_obj.alphabet == "decimal"
    train = build_dataset(spec, tmp_path / "d").split("train")
    assert train.labels == [int(x) % 2 for x in train.inputs]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("input,label\n01,0\n01,1\n", "appears with both labels"),
        ("x,label\n01,0\n", "needs columns 'input' and 'label'"),
        ("input,label\n01,2\n", "0/1 label"),
        ("input,label\n" + "".join(f"{n:08b},{n % 2}\n" for n in range(60)), "only 30 distinct inputs"),
    ],
)
def test_bad_labelled_files_are_refused(tmp_path, content: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(UsageError, match=message):
        make_specs([str(path)])
    with pytest.raises(UsageError, match="not found"):
        make_specs([str(tmp_path / "missing.csv")])
    if "distinct" in message:
        with pytest.raises(UsageError, match="has inputs of length 8: use --lengths 8"):
            make_specs([str(path)], [9], **SMALL)


def test_concurrent_builders_of_one_store_agree(tmp_path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    spec = DatasetSpec("fn_j", 30, **SMALL)
    with ThreadPoolExecutor(4) as pool:
        datasets = list(pool.map(lambda _: build_dataset(spec, tmp_path), range(4)))
    assert all(d.split("test").lines == datasets[0].split("test").lines for d in datasets)
    assert dataset_status(spec, tmp_path) == "built"
    assert [p.name for p in spec.store_path(tmp_path).parent.iterdir()] == [f"seed{spec.derived_seed}"]
