"""The hidden functions (targets) and their registry.

Each target's `label(x)` is the ground truth: plain Python on the input string, returning 0 or 1.
The generators (generators.py) produce inputs quickly; the store checks every stored label against
`label` before anything is written, so a generator bug can never reach a dataset.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

import numpy as np

from llm_erm.datasets.tabular.tables import TABLES, TABULAR_TARGETS, TableDef
from llm_erm.errors import UsageError

DEFAULT_LENGTHS = (100, 50, 30, 25, 20)
# two_primes and gcd_range read two L/2-digit numbers: even lengths only.
PAIR_LENGTHS = (100, 50, 30, 20)
DYCK2_LENGTHS = (100, 80, 60, 40, 20)
# fn_aa: E = floor(L/6) edge tokens; 20 is too short (E=3), and 24/25 are the same graph size,
# so the defaults are the paper's lengths that the target supports.
GRAPH_LENGTHS = (100, 50, 30, 25)


@dataclass(frozen=True)
class Target:
    """One hidden boolean function over strings of one alphabet."""

    id: str  # "fn_a"; for a user target "module.path:callable"
    name: str  # "parity_all"; the store's directory name
    alphabet: str  # "binary" | "decimal" | "edges" | "tabular"
    default_lengths: tuple[int, ...]
    label: Callable[[str], int] = field(repr=False)
    description: str = ""
    # Parameters that depend on the length (parity_rand positions, ...): recorded in meta.json
    # and part of the dataset id.
    params: Callable[[int], dict] | None = field(default=None, repr=False)
    # Refuses a length the target cannot be defined or generated at (UsageError).
    check_length: Callable[[int], None] | None = field(default=None, repr=False)
    # A labelled-file target's distinct inputs per class (negatives, positives): sampled, not generated.
    examples: tuple[tuple[str, ...], tuple[str, ...]] | None = field(default=None, repr=False, compare=False)
    # A tabular target's table (its target id in llm_erm.datasets.tabular): rows drawn from a real table.
    table: str | None = None

    def params_for(self, length: int) -> dict:
        return self.params(length) if self.params else {}

    def validate_length(self, length: int) -> None:
        if length < 1:
            raise UsageError(f"length must be a positive integer, got {length}")
        if self.check_length:
            self.check_length(length)


# ---------------------------------------------------------------- parity over fixed random positions

PARITY_RAND_POSITIONS: dict[int, tuple[int, ...]] = {
    20: (2, 14, 18, 15, 1, 10, 0, 4, 6, 11),
    24: (6, 15, 22, 2, 10, 19, 3, 18, 14, 17),
    25: (17, 12, 2, 0, 22, 20, 21, 6, 8, 18),
    30: (12, 0, 6, 25, 8, 15, 10, 18, 16, 23),
    40: (22, 9, 32, 15, 0, 3, 8, 18, 14, 13),
    50: (42, 17, 30, 34, 20, 25, 0, 8, 36, 18),
    60: (42, 35, 52, 55, 22, 15, 40, 30, 26, 47),
    80: (22, 21, 60, 50, 6, 40, 48, 64, 30, 66),
    100: (42, 96, 62, 98, 46, 95, 60, 24, 78, 16),
}
POSITIONS_RULE = (
    "lengths above 200: the first 10 entries of a permutation of range(L) drawn by "
    "numpy.random.default_rng(seed) with seed = first 8 bytes (big-endian) of "
    "SHA-256('parity_rand|L={L}') AND 0x7FFFFFFF"
)
UPSTREAM_RULE = "upstream's: the first entries of torch.randperm(L) after torch.manual_seed(42) (precomputed)"


@cache
def parity_rand_positions(length: int) -> tuple[int, ...]:
    """The 10 positions of parity_rand_10 at this length (parity_rand_3 uses the first 3): upstream's
    torch.randperm(L) with seed 42 up to L=200 (the SPEC table at its lengths), a rule of ours above."""
    from llm_erm.datasets.parity_positions import TORCH_POSITIONS

    if length in PARITY_RAND_POSITIONS:
        return PARITY_RAND_POSITIONS[length]
    if length < 10:
        raise UsageError(f"parity_rand needs a length >= 10, got {length}")
    if length in TORCH_POSITIONS:
        return TORCH_POSITIONS[length]
    digest = hashlib.sha256(f"parity_rand|L={length}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "big") & 0x7FFFFFFF)
    return tuple(int(p) for p in rng.permutation(length)[:10])


def _parity_rand(k: int) -> tuple[Callable[[str], int], Callable[[int], dict]]:
    def label(x: str) -> int:
        return sum(x[p] == "1" for p in parity_rand_positions(len(x))[:k]) & 1

    def params(length: int) -> dict:
        from llm_erm.datasets.parity_positions import TORCH_POSITIONS

        rule = ("paper table" if length in PARITY_RAND_POSITIONS else
                UPSTREAM_RULE if length in TORCH_POSITIONS else POSITIONS_RULE)
        return {"positions": list(parity_rand_positions(length)[:k]), "positions_rule": rule}

    return label, params


# ---------------------------------------------------------------- label functions


def parity_all(x: str) -> int:
    return x.count("1") & 1


def parity_first_half(x: str) -> int:
    return x[: len(x) // 2].count("1") & 1


PATTERN_1 = "10101010"
PATTERN_2 = "00111111"


def patternmatch1(x: str) -> int:
    return int(PATTERN_1 in x)


def patternmatch2(x: str) -> int:
    return int(PATTERN_2 in x)


def palindrome(x: str) -> int:
    return int(x == x[::-1])


DYCK2_DECODING = {"00": "(", "01": ")", "10": "[", "11": "]"}


def dyck2(x: str) -> int:
    """1 iff the pair decoding 00->( 01->) 10->[ 11->] is a well-nested Dyck-2 word."""
    if len(x) % 2:
        return 0
    stack: list[str] = []
    for i in range(0, len(x), 2):
        symbol = DYCK2_DECODING[x[i : i + 2]]
        if symbol in "([":
            stack.append(symbol)
        elif not stack or stack.pop() != {")": "(", "]": "["}[symbol]:
            return 0
    return int(not stack)


def _is_prime(n: int) -> bool:
    from sympy import isprime  # uses gmpy2 when installed: 100-digit tests stay sub-millisecond

    return bool(isprime(n))


def prime_decimal(x: str) -> int:
    return int(_is_prime(int(x)))


RULE30 = (0, 1, 1, 1, 1, 0, 0, 0)  # new cell for neighbourhood index 4*left + 2*centre + right


def automata_parity(x: str) -> int:
    """Parity of the cells after one Rule-30 step, with a 0 padded at both ends."""
    cells = [0, *(c == "1" for c in x), 0]
    return sum(RULE30[4 * cells[i - 1] + 2 * cells[i] + cells[i + 1]] for i in range(1, len(cells) - 1)) & 1


def sha256_parity(x: str) -> int:
    return int.from_bytes(hashlib.sha256(x.encode("ascii")).digest(), "big").bit_count() & 1


PRIME_SHIFT = 47


def prime_plus_47(x: str) -> int:
    n = int(x) - PRIME_SHIFT
    return int(n >= 2 and _is_prime(n))


# ---------------------------------------------------------------- the rest of the official list

# DLFundamentals/LLM_PV's target_functions.py defines these four without an fn_ id; their names are
# their ids here. two_primes and gcd_range read the input as two numbers: the first floor(L/2)
# digits and the rest.

MINUS_SHIFT = 5
GCD_LOW, GCD_HIGH = 20, 51


def _halves(x: str) -> tuple[int, int]:
    half = len(x) // 2
    return int(x[:half] or 0), int(x[half:] or 0)


def two_primes(x: str) -> int:
    """1 iff both numbers are >= 2 and have the same primality (both prime or both composite)."""
    a, b = _halves(x)
    return int(a >= 2 and b >= 2 and _is_prime(a) == _is_prime(b))


def prime_minus_5(x: str) -> int:
    n = int(x) - MINUS_SHIFT
    return int(n >= 2 and _is_prime(n))


def gcd_range(x: str) -> int:
    """1 iff both numbers are non-zero and 20 <= gcd(a, b) <= 51."""
    import math

    a, b = _halves(x)
    return int(a != 0 and b != 0 and GCD_LOW <= math.gcd(a, b) <= GCD_HIGH)


POLY_DEGREE, POLY_TERMS = 3, 3
POLY_RULE = (
    "k = min(10, max(5, L // 10)) relevant positions and 3 distinct monomials of degree 1..3 over them, "
    "drawn by random.Random(seed) (relevant = sorted(sample(range(L), k)); monomials = sorted(sample(all "
    "combinations of degree 1..3 in increasing order, 3))), seed = first 8 bytes (big-endian) of "
    "SHA-256('poly_f2_deg3|L={L}') AND 0x7FFFFFFF; label = XOR over the monomials of the AND of their bits"
)


@cache
def poly_monomials(length: int) -> tuple[tuple[int, ...], ...]:
    """The GF(2) polynomial of poly_f2_deg3 at this length (upstream seeds it with Python's salted
    hash(); ours is a fixed rule, see POLY_RULE)."""
    import random
    from itertools import combinations

    if length < 5:
        raise UsageError(f"poly_f2_deg3 needs a length >= 5, got {length}")
    digest = hashlib.sha256(f"poly_f2_deg3|L={length}".encode()).digest()
    rnd = random.Random(int.from_bytes(digest[:8], "big") & 0x7FFFFFFF)
    k = min(10, max(5, length // 10))
    relevant = sorted(rnd.sample(range(length), k))
    candidates = [c for degree in range(1, POLY_DEGREE + 1) for c in combinations(relevant, degree)]
    return tuple(sorted(rnd.sample(candidates, POLY_TERMS)))


def poly_f2_deg3(x: str) -> int:
    return sum(all(x[i] == "1" for i in term) for term in poly_monomials(len(x))) & 1


def _poly_params(length: int) -> dict:
    return {"monomials": [list(t) for t in poly_monomials(length)], "rule": POLY_RULE}


# ---------------------------------------------------------------- graph_has_cycle (fn_aa)

# Input format (our decision, documented in the README of the datasets package): E = floor(L/6)
# edge tokens `uDDvDD` concatenated with nothing between them, e.g. "u07v31u31v02" for E = 2;
# DD are two-digit vertex ids 01..99. The string has 6*E characters (L rounded down to a multiple
# of 6). Edges are undirected; self-loops and repeated edges are allowed and count as edges.
EDGE_TOKEN = re.compile(r"u(\d\d)v(\d\d)")
EDGES_RE = re.compile(r"(?:u\d\dv\d\d)*")
GRAPH_MIN_LENGTH = 24
GRAPH_MAX_VERTEX = 99


def graph_edges(length: int) -> int:
    return length // 6


def graph_threshold(edges: int) -> int:
    return max(1, edges // 6)


def cycle_rank(edges: list[tuple[int, int]]) -> int:
    """E - V + C of the multigraph: the number of edges that close a cycle when added in turn."""
    parent: dict[int, int] = {}

    def root(v: int) -> int:
        parent.setdefault(v, v)
        while parent[v] != v:
            parent[v] = parent[parent[v]]
            v = parent[v]
        return v

    rank = 0
    for u, v in edges:
        ru, rv = root(u), root(v)
        if ru == rv:
            rank += 1
        else:
            parent[ru] = rv
    return rank


def parse_edges(x: str) -> list[tuple[int, int]]:
    if not EDGES_RE.fullmatch(x):
        raise ValueError(f"not a string of uDDvDD edge tokens: {x[:40]!r}")
    return [(int(u), int(v)) for u, v in EDGE_TOKEN.findall(x)]


def graph_has_cycle(x: str) -> int:
    edges = parse_edges(x)
    return int(cycle_rank(edges) > graph_threshold(len(edges)))


def _graph_params(length: int) -> dict:
    edges = graph_edges(length)
    return {"edges": edges, "threshold": graph_threshold(edges), "input_chars": 6 * edges,
            "token": "uDDvDD", "vertices": f"01..{GRAPH_MAX_VERTEX:02d}"}


def graph_max_length() -> int:
    """The longest length whose negatives fit 99 vertices: a forest part of E - t edges needs E - t + 1."""
    length = GRAPH_MIN_LENGTH
    while graph_edges(length + 6) - graph_threshold(graph_edges(length + 6)) + 1 <= GRAPH_MAX_VERTEX:
        length += 6
    return length + 5


# ---------------------------------------------------------------- length rules


def _min_length(minimum: int, why: str) -> Callable[[int], None]:
    def check(length: int) -> None:
        if length < minimum:
            raise UsageError(f"{why} needs a length >= {minimum}, got {length}")

    return check


def _check_dyck2(length: int) -> None:
    if length % 4 or length < 4:
        lower = max(4, length - length % 4)
        raise UsageError(
            f"dyck2 (fn_h) needs a length divisible by 4, got {length}: pick e.g. {lower} or {lower + 4}"
        )


def _check_pair(name: str, minimum: int) -> Callable[[int], None]:
    def check(length: int) -> None:
        if length % 2 or length < minimum:
            lower = max(minimum, length - length % 2)
            raise UsageError(
                f"{name} reads two numbers of L/2 digits each: it needs an even length >= {minimum}, "
                f"got {length}: pick e.g. {lower}"
            )

    return check


def _check_graph(length: int) -> None:
    top = graph_max_length()
    if not GRAPH_MIN_LENGTH <= length <= top:
        raise UsageError(
            f"graph_has_cycle (fn_aa) needs {GRAPH_MIN_LENGTH} <= length <= {top} "
            f"(E = floor(L/6) edges, 99 vertex ids), got {length}"
        )


# ---------------------------------------------------------------- the registry


def _make_builtins() -> dict[str, Target]:
    rand3_label, rand3_params = _parity_rand(3)
    rand10_label, rand10_params = _parity_rand(10)
    targets = [
        Target("fn_a", "parity_all", "binary", DEFAULT_LENGTHS, parity_all, "number of '1' is odd"),
        Target("fn_b", "parity_first_half", "binary", DEFAULT_LENGTHS, parity_first_half,
               "number of '1' among positions 0..floor(L/2)-1 is odd",
               check_length=_min_length(2, "parity_first_half (fn_b)")),
        Target("fn_c", "patternmatch1", "binary", DEFAULT_LENGTHS, patternmatch1,
               f"substring {PATTERN_1} occurs", check_length=_min_length(8, "patternmatch1 (fn_c)")),
        Target("fn_d", "patternmatch2", "binary", DEFAULT_LENGTHS, patternmatch2,
               f"substring {PATTERN_2} occurs", check_length=_min_length(8, "patternmatch2 (fn_d)")),
        Target("fn_e", "parity_rand_3", "binary", DEFAULT_LENGTHS, rand3_label,
               "XOR of the bits at 3 fixed positions", params=rand3_params,
               check_length=_min_length(10, "parity_rand_3 (fn_e)")),
        Target("fn_f", "parity_rand_10", "binary", DEFAULT_LENGTHS, rand10_label,
               "XOR of the bits at 10 fixed positions", params=rand10_params,
               check_length=_min_length(10, "parity_rand_10 (fn_f)")),
        Target("fn_g", "palindrome", "binary", DEFAULT_LENGTHS, palindrome, "the string equals its reverse",
               check_length=_min_length(2, "palindrome (fn_g)")),
        Target("fn_h", "dyck2", "binary", DYCK2_LENGTHS, dyck2,
               "pairs 00->( 01->) 10->[ 11->] form a well-nested Dyck-2 word", check_length=_check_dyck2),
        Target("fn_i", "prime_decimal", "decimal", DEFAULT_LENGTHS, prime_decimal,
               "the L-digit integer is prime", check_length=_min_length(2, "prime_decimal (fn_i)")),
        Target("fn_j", "automata_parity", "binary", DEFAULT_LENGTHS, automata_parity,
               "parity of one Rule-30 step (zero padded)"),
        Target("fn_k", "prime_decimal_tf_check", "decimal", DEFAULT_LENGTHS, prime_decimal,
               "the L-digit integer is prime; negatives are composites ending in 1, 3, 7 or 9",
               check_length=_min_length(2, "prime_decimal_tf_check (fn_k)")),
        Target("fn_l", "sha256_parity", "binary", DEFAULT_LENGTHS, sha256_parity,
               "popcount of SHA-256(the ASCII string) is odd"),
        Target("fn_v", "prime_plus_47", "decimal", DEFAULT_LENGTHS, prime_plus_47,
               "n-47 >= 2 and n-47 is prime", check_length=_min_length(2, "prime_plus_47 (fn_v)")),
        Target("fn_aa", "graph_has_cycle", "edges", GRAPH_LENGTHS, graph_has_cycle,
               "cycle rank E - V + C of the uDDvDD edge list exceeds max(1, E // 6)",
               params=_graph_params, check_length=_check_graph),
        Target("two_primes", "two_primes", "decimal", PAIR_LENGTHS, two_primes,
               "the two L/2-digit numbers are both >= 2 and both prime or both composite",
               check_length=_check_pair("two_primes", 4)),
        Target("prime_minus_5", "prime_minus_5", "decimal", DEFAULT_LENGTHS, prime_minus_5,
               "n-5 >= 2 and n-5 is prime", check_length=_min_length(2, "prime_minus_5")),
        Target("gcd_range", "gcd_range", "decimal", PAIR_LENGTHS, gcd_range,
               "the two L/2-digit numbers are non-zero and 20 <= gcd <= 51",
               check_length=_check_pair("gcd_range", 4)),
        Target("poly_f2_deg3", "poly_f2_deg3", "binary", DEFAULT_LENGTHS, poly_f2_deg3,
               "XOR of 3 fixed monomials of degree <= 3 over GF(2)", params=_poly_params,
               check_length=_min_length(5, "poly_f2_deg3")),
        *(_tabular_target(t) for t in TABLES),
    ]
    return {t.id: t for t in targets}


def _tabular_target(table: TableDef) -> Target:
    def label(x: str, _id: str = table.target_id) -> int:
        from llm_erm.datasets.tabular.generate import raw_label

        return raw_label(_id, x)

    def check_length(length: int) -> None:
        if length != table.n_features:
            raise UsageError(
                f"{table.target_id} ({table.name}) is a tabular target: its length is its number of features, "
                f"{table.n_features}, got {length}; use --lengths {table.n_features} or leave --lengths out"
            )

    return Target(table.target_id, table.name, "tabular", (table.n_features,), label, table.title,
                  check_length=check_length, table=table.target_id)


BUILTIN_TARGETS: dict[str, Target] = _make_builtins()
SEED_TARGETS: tuple[str, ...] = tuple(f"fn_{c}" for c in "abcdefghijkl")
# The synthetic targets with an fn_ id: the paper's twelve (SEED_TARGETS), then fn_v and fn_aa.
ALL_TARGETS: tuple[str, ...] = SEED_TARGETS + ("fn_v", "fn_aa")
# The official code's other synthetic targets (no fn_ id upstream: their names are their ids).
OFFICIAL_EXTRA_TARGETS: tuple[str, ...] = ("two_primes", "prime_minus_5", "gcd_range", "poly_f2_deg3")
# Every registered built-in: synthetic, then tabular (TABULAR_TARGETS).
REGISTERED_TARGETS: tuple[str, ...] = ALL_TARGETS + OFFICIAL_EXTRA_TARGETS + TABULAR_TARGETS
_BY_NAME = {t.name: t for t in BUILTIN_TARGETS.values()}


def get_target(target_id: str) -> Target:
    """A built-in target by id ("fn_a") or name ("parity_all")."""
    target = BUILTIN_TARGETS.get(target_id) or _BY_NAME.get(target_id)
    if target is None:
        raise UsageError(
            f"unknown target {target_id!r}: use one of {', '.join(REGISTERED_TARGETS)} "
            "or a user target 'module.path:callable' or a labelled file"
        )
    return target


FILE_SUFFIXES = (".csv", ".parquet")


def is_user_target(spec: str) -> bool:
    """A callable, a labelled file, or a labelled file's safe name (llm_erm.datasets.custom)."""
    return ":" in spec or spec.lower().endswith(FILE_SUFFIXES) or spec.startswith("file-")


def resolve_target(spec: str, alphabet: str | None = None) -> Target:
    """A built-in target ("fn_a", "parity_all") or a user target: "module.path:callable", or a
    labelled file "path/to/data.csv|.parquet" with `input` and `label` columns."""
    if spec.lower().endswith(FILE_SUFFIXES):
        from llm_erm.datasets.custom import load_file_target

        return load_file_target(spec, alphabet)
    if spec.startswith("file-"):  # a labelled file by its safe name (the ledger's target column)
        from llm_erm.datasets.custom import loaded_file_target

        return loaded_file_target(spec)
    if ":" in spec:
        from llm_erm.datasets.custom import load_callable_target

        return load_callable_target(spec, alphabet or "binary")
    target = get_target(spec)
    if alphabet is not None and alphabet != target.alphabet:
        raise UsageError(f"{target.id} ({target.name}) is a {target.alphabet} target; drop --alphabet {alphabet}")
    return target
