"""Dataset specs, ids and the content-hashed on-disk store.

Layout (seed-compatible with the paper code):

    <datasets_dir>/<target name>/L<L>/seed<derived_seed>/{train,val,test}.txt, meta.json

one `<input> -> <label>` line per example, `\\n`-terminated, UTF-8. A store is built in a temporary
sibling directory and renamed into place when complete, so a reader never sees half a store.
It is reused only when meta.json matches the spec and every split file matches its sha256;
anything else (missing, truncated, edited, stale generator version) is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from llm_erm.datasets.generators import (
    PROBE_DRAWS,
    VARIANTS,
    check_variant_length,
    class_capacity,
    class_sampler,
    probe_classes,
)
from llm_erm.datasets.splits import SPLITS, generate_splits
from llm_erm.datasets.tabular.protocol import DEFAULT_PROTOCOL, check_protocol, parse_row
from llm_erm.datasets.targets import Target, is_user_target, resolve_target
from llm_erm.errors import UsageError

# Bump when a generator changes what it produces: ids change and old stores are rebuilt. A change to one
# target's generator bumps only that target (TARGET_GENERATOR_VERSIONS), so every other target keeps its
# dataset ids and bytes (tests/test_datasets_upstream.py pins a few).
GENERATOR_VERSION = "1"
TARGET_GENERATOR_VERSIONS: dict[str, str] = {
    "fn_g": "2",  # negatives: the paper's (near misses at L=20, uniform elsewhere), not a mixture
    "fn_v": "2",  # composites end in 1/3/7/9 before adding 47, as upstream: the last digit no longer leaks
}


def generator_version(target_id: str) -> str:
    return TARGET_GENERATOR_VERSIONS.get(target_id, GENERATOR_VERSION)
SEPARATOR = " -> "
_TAILS = {SEPARATOR + "0", SEPARATOR + "1"}


@dataclass(frozen=True)
class DatasetSpec:
    """What to generate: target, length, split sizes and base seed (and the alphabet of a user target).

    `protocol` ("clean" or "raw") and `table_file` apply to the tabular targets only and are ignored
    by the others. The protocol is part of a tabular dataset's id and directory; the table file is only
    where the table is read from (the table's content hash is what enters the id).
    """

    target: str
    length: int
    train_size: int = 100
    val_size: int = 100
    test_size: int = 10000
    seed: int = 42
    alphabet: str | None = None  # only for user targets (a callable, a labelled file)
    protocol: str = DEFAULT_PROTOCOL  # tabular targets: "clean" (anonymised) or "raw"
    table_file: str | None = None  # tabular targets: read the table from this local file
    # A named sampling variant of the target (generators.VARIANTS, e.g. fn_g "near-miss"); None = the
    # paper's sampling. A variant is part of the dataset id and the store's leaf directory.
    variant: str | None = None
    # Allow repeated inputs where a class's space is too small for distinct train + val (the paper's n=10 sets;
    # splits.py): then test is not held out, and meta.json says so. Part of the id and leaf (-dup) when True.
    duplicates: bool = False

    @property
    def target_obj(self) -> Target:
        return resolve_target(self.target, self.alphabet)

    @property
    def is_tabular_table(self) -> bool:
        return self.target_obj.table is not None

    @property
    def sizes(self) -> dict[str, int]:
        return {"train": self.train_size, "val": self.val_size, "test": self.test_size}

    @property
    def derived_seed(self) -> int:
        """The paper code's dataset seed, so our dataset ids line up with its files: the first 8 bytes of the
        key's SHA-256, big-endian, AND 0x7FFFFFFF (note train= is train + val)."""
        key = (
            f"{self.target_obj.id}|L={self.length}|train={self.train_size + self.val_size}"
            f"|test={self.test_size}|base_seed={self.seed}"
        )
        return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") & 0x7FFFFFFF

    @property
    def params(self) -> dict:
        if self.is_tabular_table:
            from llm_erm.datasets.tabular import generate as tabular

            return tabular.params(self)
        return self.target_obj.params_for(self.length)

    @property
    def dataset_id(self) -> str:
        """Content hash of everything that determines the data (never the data itself)."""
        target = self.target_obj
        key = {
            "target": target.id,
            "alphabet": target.alphabet,
            "length": self.length,
            "sizes": self.sizes,
            "seed": self.seed,
            "generator_version": generator_version(target.id),
            "params": self.params,
        }
        if self.variant is not None:  # only then: the default's ids stay what they were
            key["variant"] = self.variant
        if self.duplicates:
            key["duplicates"] = True
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]

    def describe(self) -> str:
        target = self.target_obj
        variant = f", variant {self.variant}" if self.variant else ""
        return f"{target.id} ({target.name}) at L={self.length}{variant}"

    def validate(self) -> None:
        """UsageError for anything that cannot be built: odd or non-positive sizes, an unknown
        target, a length the target does not support, more samples than the input space holds."""
        target = self.target_obj
        for split, size in self.sizes.items():
            if size < 2 or size % 2:
                raise UsageError(
                    f"--{split}-size must be a positive even number (splits are exactly balanced), got {size}"
                )
        check_protocol(self.protocol)
        if self.variant is not None and self.variant not in VARIANTS.get(target.id, {}):
            offered = ", ".join(VARIANTS.get(target.id, {})) or "none"
            raise UsageError(f"{target.id} ({target.name}) has no sampling variant {self.variant!r} "
                             f"(variants: {offered}); leave it out for the paper's sampling")
        target.validate_length(self.length)
        check_variant_length(target, self.length, self.variant)
        if target.table is not None:
            from llm_erm.datasets.tabular import generate as tabular

            tabular.validate(self)
            return
        capacity = class_capacity(target, self.length, self.variant)
        if capacity is None and is_user_target(target.id):  # a user function over a large space: probe it
            counts = probe_classes(target, self.length)
            for label, seen in zip((0, 1), counts, strict=True):
                if not seen:
                    raise UsageError(
                        f"user target {target.id} never returned {label} on {PROBE_DRAWS} random "
                        f"{target.alphabet} inputs of length {self.length}: it must take both values "
                        "often enough to fill balanced splits"
                    )
        if capacity is None:
            return
        # distinct train+val, and one left for test; with duplicates one input of each label is enough
        needed = 1 if self.duplicates else (self.train_size + self.val_size) // 2 + 1
        for label, available in zip((0, 1), capacity, strict=True):
            if available < needed:
                raise UsageError(
                    f"{self.describe()} has only {available} distinct inputs with label {label}, "
                    f"but train+val need {needed - 1} distinct ones plus one for test: "
                    "use a longer length or smaller --train-size/--val-size"
                )

    def store_path(self, datasets_dir: Path) -> Path:
        """`<dir>/<target name>/L<L>/seed<derived>/`; a tabular table's store adds its protocol
        (`seed<derived>-clean`), so the raw and clean datasets of one spec sit side by side."""
        leaf = f"seed{self.derived_seed}"
        if self.is_tabular_table:
            leaf += f"-{self.protocol}"
        if self.variant is not None:
            leaf += f"-{self.variant}"
        if self.duplicates:
            leaf += "-dup"
        return Path(datasets_dir) / self.target_obj.name / f"L{self.length}" / leaf


def validate_specs(specs: list[DatasetSpec]) -> None:
    """Validate every spec before any work (the CLI and the grid flow call this first)."""
    for spec in specs:
        spec.validate()


@dataclass
class Split:
    """One split as stored: `lines` are the file's lines without the newline.

    `texts` are the inputs as stored (what the prompt shows); `inputs` are what the candidate's `f`
    receives: the same strings, except for tabular rows (`tabular=True`), which become dicts of typed
    values (`k:v,...` -> {k: v}; '?' -> None, integers -> int, decimals -> float, else str).
    """

    lines: list[str]
    tabular: bool = False
    texts: list[str] = field(init=False)
    inputs: list = field(init=False)
    labels: list[int] = field(init=False)

    def __post_init__(self) -> None:
        if {line[-5:] for line in self.lines} <= _TAILS:  # every label is one digit: slice, do not search
            self.texts = [line[:-5] for line in self.lines]
            self.labels = [1 if line[-1] == "1" else 0 for line in self.lines]
        else:
            pairs = [line.rpartition(SEPARATOR) for line in self.lines]
            self.texts = [x for x, _, _ in pairs]
            self.labels = [int(y) for _, _, y in pairs]
        self.inputs = [parse_row(x) for x in self.texts] if self.tabular else self.texts

    @cached_property
    def label_marks(self) -> str:
        """The labels as one string of '0'/'1' (what the scorer compares a candidate's marks with)."""
        return "".join("1" if y else "0" for y in self.labels)

    def __len__(self) -> int:
        return len(self.lines)


@dataclass
class Dataset:
    """A verified store on disk."""

    spec: DatasetSpec
    path: Path
    meta: dict
    _splits: dict[str, Split] = field(default_factory=dict, init=False, repr=False)

    @property
    def target(self) -> Target:
        return self.spec.target_obj

    @property
    def dataset_id(self) -> str:
        return self.meta["dataset_id"]

    def split(self, name: str) -> Split:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}: use one of {', '.join(SPLITS)}")
        if name not in self._splits:
            text = (self.path / f"{name}.txt").read_text(encoding="utf-8")
            # Split on "\n" only: str.splitlines would also break inside inputs at \x0b, \u2028, ...
            self._splits[name] = Split(text.removesuffix("\n").split("\n") if text else [],
                                       tabular=self.target.alphabet == "tabular")
        return self._splits[name]


# ---------------------------------------------------------------- reading and verifying


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_meta(path: Path) -> dict | None:
    try:
        return json.loads((path / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def dataset_status(spec: DatasetSpec, datasets_dir: Path) -> str:
    """"built" (verified), "missing" (nothing there) or "corrupt" (there but unusable: rebuilt on build)."""
    path = spec.store_path(datasets_dir)
    if not path.exists():
        return "missing"
    meta = _read_meta(path)
    if meta is None or meta.get("dataset_id") != spec.dataset_id:
        return "corrupt"
    for split in SPLITS:
        try:
            if _sha256_file(path / f"{split}.txt") != meta["sha256"][split]:
                return "corrupt"
        except (OSError, KeyError, TypeError):
            return "corrupt"
    return "built"


def open_dataset(spec: DatasetSpec, datasets_dir: Path) -> Dataset | None:
    """The existing store of `spec` when it verifies against its hashes, else None."""
    if dataset_status(spec, datasets_dir) != "built":
        return None
    path = spec.store_path(datasets_dir)
    return Dataset(spec, path, _read_meta(path) or {})


# ---------------------------------------------------------------- building


def _render(rows: list[tuple[str, int]]) -> bytes:
    return "".join(f"{x}{SEPARATOR}{y}\n" for x, y in rows).encode("utf-8")


def generate(spec: DatasetSpec) -> tuple[dict[str, bytes], dict]:
    """The split files' bytes and meta.json's content for `spec` (nothing written)."""
    spec.validate()
    target = spec.target_obj
    if target.table is not None:
        from llm_erm.datasets.tabular import generate as tabular

        return tabular.generate(spec, GENERATOR_VERSION)
    generated = generate_splits(
        class_sampler(target, spec.length, 1, spec.variant),
        class_sampler(target, spec.length, 0, spec.variant),
        spec.sizes,
        spec.derived_seed,
        spec.describe(),
        duplicates=spec.duplicates,
    )
    # The ground truth has the last word: a generator bug must never reach a stored label.
    for split, rows in generated.rows.items():
        for x, y in rows:
            if target.label(x) != y:
                raise RuntimeError(f"generator bug: {spec.describe()} {split} input {x!r} stored as {y}")
    train_val = {x for s in ("train", "val") for x, _ in generated.rows[s]}
    overlap = train_val & {x for x, _ in generated.rows["test"]}
    if not generated.duplicated and (len(train_val) != spec.train_size + spec.val_size or overlap):
        raise RuntimeError(f"generator bug: {spec.describe()} splits overlap")
    files = {split: _render(rows) for split, rows in generated.rows.items()}
    meta = {
        "target_id": target.id,
        "target_name": target.name,
        "alphabet": target.alphabet,
        "length": spec.length,
        "base_seed": spec.seed,
        "derived_seed": spec.derived_seed,
        "sizes": spec.sizes,
        "positives": {s: sum(y for _, y in rows) for s, rows in generated.rows.items()},
        "distinct_inputs": generated.distinct,
        "generator_version": generator_version(target.id),
        "params": spec.params,
        "dataset_id": spec.dataset_id,
        "sha256": {s: hashlib.sha256(data).hexdigest() for s, data in files.items()},
    }
    if spec.duplicates:  # only then: other stores' meta stays as it was
        test_inputs = [x for x, _ in generated.rows["test"]]
        meta["duplicates"] = {
            "allowed": True, "used_for_labels": list(generated.duplicated),
            "test_rows_seen_in_train_or_val": sum(x in train_val for x in test_inputs),
            "note": "a class's input space was too small for distinct train + val: its splits were drawn with "
                    "repeats (as upstream's allow_duplicates), so test is not held out" if generated.duplicated
                    else "every split is distinct and leak-free: the space was large enough",
        }
    if target.id in VARIANTS:  # which sampling made the data (only here: other targets' meta stays as it was)
        meta["variant"] = spec.variant
        meta["sampling"] = VARIANTS[target.id].get(spec.variant or "", "default: the paper's (upstream's) sampling")
    return files, meta


def build_dataset(spec: DatasetSpec, datasets_dir: Path) -> Dataset:
    """The verified store of `spec`: reused when intact, else generated and swapped in atomically."""
    existing = open_dataset(spec, datasets_dir)
    if existing is not None:
        return existing
    files, meta = generate(spec)
    final = spec.store_path(datasets_dir)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        for split, data in files.items():
            (staging / f"{split}.txt").write_bytes(data)
        (staging / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        if final.exists():
            finished = open_dataset(spec, datasets_dir)  # another builder may have just finished it
            if finished is not None:
                return finished
            # Corrupt or stale: move it aside, then swap the new one in.
            trash = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
            os.replace(final, trash / "store")
            shutil.rmtree(trash, ignore_errors=True)
        try:
            os.replace(staging, final)
        except OSError:
            # Another process finished the same store first: use theirs if it verifies.
            winner = open_dataset(spec, datasets_dir)
            if winner is None:
                raise
            return winner
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Dataset(spec, final, meta)
