"""Per-family samplers: candidate inputs of one class, drawn fast (numpy where it matters).

`class_sampler(target, length, label)` returns `draw(rng, n) -> list[str]`: about n candidate inputs
whose label is `label` (possibly fewer, possibly repeated; splits.py deduplicates and keeps
drawing). Every sampler terminates per call; none loops until it "gets lucky".
`class_capacity(target, length)` says how many distinct inputs each class can hold, where that
is small enough to matter, so impossible requests are refused before any work.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from math import comb

import numpy as np

from llm_erm.datasets import targets as T
from llm_erm.datasets.targets import Target

Draw = Callable[[np.random.Generator, int], list[str]]
BatchLabel = Callable[[np.ndarray], np.ndarray]  # (n, L) uint8 symbols -> (n,) 0/1 labels

ENUMERATE_MAX = 1 << 16  # input spaces up to this size are counted exactly by enumeration


# ---------------------------------------------------------------- symbols <-> strings


def symbols_to_strings(symbols: np.ndarray) -> list[str]:
    """(n, L) array of 0..9 -> n strings of digits."""
    n, length = symbols.shape
    if n == 0:
        return []
    ascii_rows = np.ascontiguousarray(symbols + 48, dtype=np.uint8).view(f"S{length}").ravel()
    return ascii_rows.astype(f"U{length}").tolist()


def strings_to_symbols(strings: list[str], length: int) -> np.ndarray:
    raw = np.frombuffer("".join(strings).encode("ascii"), dtype=np.uint8)
    return (raw.reshape(len(strings), length) - 48).astype(np.uint8)


def _random_bits(rng: np.random.Generator, n: int, length: int) -> np.ndarray:
    return rng.integers(0, 2, size=(n, length), dtype=np.uint8)


# ---------------------------------------------------------------- vectorised labels (binary targets)


def _parity_positions(positions: tuple[int, ...]) -> BatchLabel:
    idx = np.asarray(positions)
    return lambda bits: bits[:, idx].sum(axis=1, dtype=np.int64) & 1


def _rule30_parity(bits: np.ndarray) -> np.ndarray:
    padded = np.pad(bits, ((0, 0), (1, 1)))
    neighbourhood = 4 * padded[:, :-2] + 2 * padded[:, 1:-1] + padded[:, 2:]
    return np.asarray(T.RULE30, dtype=np.int64)[neighbourhood].sum(axis=1) & 1


def _contains(bits: np.ndarray, pattern: str) -> np.ndarray:
    """Rows of `bits` that contain the bit pattern as a substring."""
    k = len(pattern)
    if bits.shape[1] < k:
        return np.zeros(len(bits), dtype=bool)
    windows = np.lib.stride_tricks.sliding_window_view(bits, k, axis=1)
    return (windows == np.frombuffer(pattern.encode(), dtype=np.uint8) - 48).all(axis=-1).any(axis=-1)


def batch_label(target: Target, length: int) -> BatchLabel | None:
    """A numpy version of target.label for the binary targets that have one."""
    if target.id == "fn_a":
        return lambda bits: bits.sum(axis=1, dtype=np.int64) & 1
    if target.id == "fn_b":
        return lambda bits: bits[:, : length // 2].sum(axis=1, dtype=np.int64) & 1
    if target.id in ("fn_e", "fn_f"):
        return _parity_positions(tuple(target.params_for(length)["positions"]))
    if target.id == "fn_j":
        return _rule30_parity
    if target.id == "fn_c":
        return lambda bits: _contains(bits, T.PATTERN_1).astype(np.int64)
    if target.id == "fn_d":
        return lambda bits: _contains(bits, T.PATTERN_2).astype(np.int64)
    if target.id == "fn_g":
        return lambda bits: (bits == bits[:, ::-1]).all(axis=1).astype(np.int64)
    if target.id == "poly_f2_deg3":
        terms = [np.asarray(t) for t in T.poly_monomials(length)]
        return lambda bits: np.bitwise_xor.reduce(
            np.stack([bits[:, t].all(axis=1) for t in terms]), axis=0).astype(np.int64)
    return None


# ---------------------------------------------------------------- generic: uniform strings, filtered


def _uniform_filtered(target: Target, length: int, label: int) -> Draw:
    """Uniform strings of the alphabet, kept when the target gives them `label`."""
    base = 10 if target.alphabet == "decimal" else 2
    fast = batch_label(target, length) if base == 2 else None

    def draw(rng: np.random.Generator, n: int) -> list[str]:
        symbols = rng.integers(0, base, size=(2 * n + 64, length), dtype=np.uint8)
        if fast is not None:
            return symbols_to_strings(symbols[fast(symbols) == label])
        return [x for x in symbols_to_strings(symbols) if target.label(x) == label]

    return draw


# ---------------------------------------------------------------- patterns


def _pattern_sampler(pattern: str, length: int, label: int) -> Draw:
    pattern_bits = np.frombuffer(pattern.encode(), dtype=np.uint8) - 48

    def positives(rng: np.random.Generator, n: int) -> list[str]:
        bits = _random_bits(rng, n, length)
        offsets = rng.integers(0, length - len(pattern) + 1, size=n)
        columns = offsets[:, None] + np.arange(len(pattern))
        bits[np.arange(n)[:, None], columns] = pattern_bits
        return symbols_to_strings(bits)

    def negatives(rng: np.random.Generator, n: int) -> list[str]:
        # At L=100 about 30% of uniform strings contain 10101010: rejection wastes little.
        bits = _random_bits(rng, 2 * n + 64, length)
        return symbols_to_strings(bits[~_contains(bits, pattern)])

    return positives if label else negatives


# ---------------------------------------------------------------- palindrome


def _palindromes(rng: np.random.Generator, n: int, length: int) -> np.ndarray:
    half = _random_bits(rng, n, (length + 1) // 2)
    return np.hstack([half, half[:, : length // 2][:, ::-1]])


# fn_g's negatives. Default (None): the paper's, LLM_ERM's get_data_generator: one-flip near misses at L=20,
# uniform non-palindromes at every other L. The named variants draw otherwise and enter the dataset id.
PALINDROME_NEAR_MISS_LENGTHS = (20,)
PALINDROME_VARIANTS = {
    "near-miss": "negatives are one-flip near misses at every L (LLM_PV's sampling, but the flip is among "
                 "the first floor(L/2) bits, so at odd L no palindrome is ever labelled 0)",
    "mixed": "negatives are half near misses, half uniform non-palindromes, at every L (this project's "
             "default before generator version 2)",
}


def _palindrome_negative_kind(length: int, variant: str | None) -> str:
    """'near', 'uniform' or 'mixed': how fn_g's negatives are drawn at this length."""
    if variant == "near-miss":
        return "near"
    if variant == "mixed":
        return "mixed"
    return "near" if length in PALINDROME_NEAR_MISS_LENGTHS else "uniform"


def _palindrome_sampler(length: int, label: int, variant: str | None = None) -> Draw:
    kind = _palindrome_negative_kind(length, variant)

    def positives(rng: np.random.Generator, n: int) -> list[str]:
        return symbols_to_strings(_palindromes(rng, n, length))

    def negatives(rng: np.random.Generator, n: int) -> list[str]:
        # A near miss flips one of the first floor(L/2) bits of a palindrome: its mirror stays, so the
        # string cannot be a palindrome (at odd L the middle bit is never touched). Uniform strings are
        # filtered; the filter also runs on near misses, so no palindrome is ever labelled 0.
        if kind == "uniform":
            bits = _random_bits(rng, n + 8, length)
        else:
            near = _palindromes(rng, n, length)
            near[np.arange(n), rng.integers(0, length // 2, size=n)] ^= 1
            if kind == "near":
                bits = near
            else:  # the draws in version 1's order, so `mixed` gives version 1's default data
                uniform = _random_bits(rng, n, length)
                bits = np.where((rng.random(n) < 0.5)[:, None], near, uniform)
        return symbols_to_strings(bits[(bits != bits[:, ::-1]).any(axis=1)])

    return positives if label else negatives


def palindrome_capacity(length: int, variant: str | None = None) -> tuple[int, int]:
    """(negatives, positives) fn_g's sampler can reach: a near miss is one palindrome with one of its first
    floor(L/2) bits flipped (each near miss arises from exactly one such pair)."""
    positives = 2 ** ((length + 1) // 2)
    if _palindrome_negative_kind(length, variant) == "near":
        return positives * (length // 2), positives
    return 2**length - positives, positives


# ---------------------------------------------------------------- dyck2

# Symbol codes are the pair values: 0 '(' 1 ')' 2 '[' 3 ']' (open iff even, bracket type = code >> 1).


def _dyck_words(rng: np.random.Generator, n: int, n_symbols: int) -> np.ndarray:
    """n random well-nested words: open with probability 1/2 while room remains, random type."""
    rows = np.arange(n)
    words = np.empty((n, n_symbols), dtype=np.uint8)
    stack = np.zeros((n, n_symbols // 2 + 1), dtype=np.uint8)
    depth = np.zeros(n, dtype=np.int64)
    for i in range(n_symbols):
        remaining = n_symbols - i
        opens = np.where(depth == 0, True, np.where(depth >= remaining, False, rng.random(n) < 0.5))
        kind = rng.integers(0, 2, size=n, dtype=np.uint8)
        o, c = rows[opens], rows[~opens]
        stack[o, depth[o]] = kind[o]
        words[o, i] = 2 * kind[o]
        depth[o] += 1
        depth[c] -= 1
        words[c, i] = 2 * stack[c, depth[c]] + 1
    return words


def _dyck_valid(words: np.ndarray) -> np.ndarray:
    n, n_symbols = words.shape
    rows = np.arange(n)
    stack = np.zeros((n, n_symbols + 1), dtype=np.uint8)
    depth = np.zeros(n, dtype=np.int64)
    valid = np.ones(n, dtype=bool)
    for i in range(n_symbols):
        symbol = words[:, i]
        kind = symbol >> 1
        opening = (symbol & 1) == 0
        o = rows[opening]
        stack[o, depth[o]] = kind[o]
        depth[o] += 1
        c = rows[~opening]
        empty = depth[c] == 0
        valid[c[empty]] = False
        c = c[~empty]
        depth[c] -= 1
        valid[c[stack[c, depth[c]] != kind[c]]] = False
    return valid & (depth == 0)


def _words_to_bits(words: np.ndarray) -> np.ndarray:
    return np.stack([words >> 1, words & 1], axis=2).reshape(len(words), -1)


def _bits_to_words(bits: np.ndarray) -> np.ndarray:
    return 2 * bits[:, 0::2] + bits[:, 1::2]


def _dyck2_sampler(length: int, label: int) -> Draw:
    n_symbols = length // 2

    def positives(rng: np.random.Generator, n: int) -> list[str]:
        return symbols_to_strings(_words_to_bits(_dyck_words(rng, n, n_symbols)))

    def negatives(rng: np.random.Generator, n: int) -> list[str]:
        # A valid word with 1..5 distinct random bit flips, kept only when it became invalid.
        bits = _words_to_bits(_dyck_words(rng, n, n_symbols))
        flips = rng.integers(1, 6, size=n)
        rank = np.argsort(rng.random((n, length)), axis=1).argsort(axis=1)
        bits ^= (rank < flips[:, None]).astype(np.uint8)
        return symbols_to_strings(bits[~_dyck_valid(_bits_to_words(bits))])

    return positives if label else negatives


def dyck2_count(length: int) -> int:
    """Well-nested Dyck-2 words of `length` bits: Catalan(m) * 2^m with m = length / 4 pairs."""
    m = length // 4
    return comb(2 * m, m) // (m + 1) * 2**m


# ---------------------------------------------------------------- primes (fn_i, fn_k, fn_v)


def _random_numbers(rng: np.random.Generator, n: int, digits: int, last: tuple[int, ...] = ()) -> list[int]:
    """n uniform integers with exactly `digits` digits (>= 2), optionally ending in one of `last`."""
    symbols = rng.integers(0, 10, size=(n, digits), dtype=np.uint8)
    symbols[:, 0] = rng.integers(1 if digits > 1 else 2, 10, size=n)
    if last:
        choices = np.asarray([d for d in last if digits > 1 or d >= 2], dtype=np.uint8)
        symbols[:, -1] = choices[rng.integers(0, len(choices), size=n)]
    return [int(s) for s in symbols_to_strings(symbols)]


# Per prime target: (shift added to both classes, last digits allowed in the negatives' factors).
# prime_minus_5's negatives end in 1/3/7/9 before the shift, like its positives (odd primes), so
# the last digit says nothing about the label.
PRIME_FAMILY = {
    "fn_i": (0, ()),
    "fn_k": (0, (1, 3, 7, 9)),
    # Upstream (LLM_PV get_data_generator) keeps composites ending in 1/3/7/9 before adding 47, so both
    # classes end in 0/4/6/8 and the last digit says nothing (generator version 2; 1 leaked parity).
    "fn_v": (T.PRIME_SHIFT, (1, 3, 7, 9)),
    "prime_minus_5": (T.MINUS_SHIFT, (1, 3, 7, 9)),
}


def _prime_sampler(target: Target, length: int, label: int) -> Draw:
    import gmpy2

    low, high = 10 ** (length - 1), 10**length
    shift, last = PRIME_FAMILY[target.id]

    def positives(rng: np.random.Generator, n: int) -> list[str]:
        # The next prime after a uniform L-digit start, kept while it (plus the shift) has L digits.
        out = []
        for start in _random_numbers(rng, n, length):
            p = int(gmpy2.next_prime(start)) + shift
            if p < high:
                out.append(str(p))
        return out

    def negatives(rng: np.random.Generator, n: int) -> list[str]:
        # A floor(L/2)-digit times a ceil(L/2)-digit factor (>= 2) with exactly L digits; for fn_k,
        # fn_v and prime_minus_5 both factors end in 1/3/7/9, so the product does too (upstream filters
        # products to that last digit: the same conditional distribution).
        m = 2 * n + 16
        small = _random_numbers(rng, m, length // 2, last)
        large = _random_numbers(rng, m, length - length // 2, last)
        products = (a * b + shift for a, b in zip(small, large, strict=True))
        return [str(c) for c in products if low <= c - shift and c < high][: n + 8]

    return positives if label else negatives


def _prime_capacity(target: Target, length: int) -> tuple[int, int] | None:
    """Distinct inputs per class the prime generators can reach; exact for short lengths."""
    if length > 6:
        return None
    from sympy import primepi

    low, high = 10 ** (length - 1), 10**length
    shift, last = PRIME_FAMILY[target.id]
    positives = int(primepi(high - 1 - shift)) - int(primepi(low - 1))
    half, rest = length // 2, length - length // 2

    def factors(digits: int) -> np.ndarray:
        values = np.arange(max(2, 10 ** (digits - 1)), 10**digits, dtype=np.int64)
        return values[np.isin(values % 10, last)] if last else values

    products = np.multiply.outer(factors(half), factors(rest)).ravel()
    products = products[(products >= low) & (products + shift < high)]
    return len(np.unique(products)), positives


# ---------------------------------------------------------------- two_primes, gcd_range (two numbers)


def _two_primes_sampler(length: int, label: int) -> Draw:
    """Positives: two primes or two composites (each half the time); negatives: one of each, in
    either order. Every half has exactly L/2 digits (no leading zero)."""
    import gmpy2

    digits = length // 2
    low, high = 10 ** (digits - 1), 10**digits

    def prime(rnd: random.Random) -> int:
        while True:  # next prime after a uniform start; retried when it leaves the digit range
            p = int(gmpy2.next_prime(rnd.randrange(low, high)))
            if p < high:
                return p

    def composite(rnd: random.Random) -> int:
        while True:  # composites are the large majority of d-digit numbers (d >= 2)
            n = rnd.randrange(low, high)
            if not gmpy2.is_prime(n):
                return n

    def draw(rng: np.random.Generator, n: int) -> list[str]:
        rnd = random.Random(int(rng.integers(2**63)))
        out = []
        for _ in range(n):
            first_prime = rnd.random() < 0.5
            second_prime = first_prime if label else not first_prime
            a = prime(rnd) if first_prime else composite(rnd)
            b = prime(rnd) if second_prime else composite(rnd)
            out.append(f"{a}{b}")
        return out

    return draw


GCD_NEAR_MISSES = tuple(range(10, T.GCD_LOW)) + tuple(range(T.GCD_HIGH + 1, 71))


def _with_gcd(rnd: random.Random, g: int, low: int, high: int) -> tuple[int, int] | None:
    """Two numbers in [low, high) whose gcd is exactly g, or None when g has no such pair."""
    lo, hi = -(-low // g), (high - 1) // g
    if lo > hi:
        return None
    for _ in range(64):
        a, b = rnd.randint(lo, hi), rnd.randint(lo, hi)
        if math.gcd(a, b) == 1:
            return a * g, b * g
    return None


def _gcd_sampler(length: int, label: int) -> Draw:
    """Positives: gcd exactly g for a uniform g in 20..51. Negatives: half near misses (gcd exactly
    g for g in 10..19 or 52..70), half uniform pairs whose gcd is outside 20..51."""
    digits = length // 2
    low, high = 10 ** (digits - 1), 10**digits

    def draw(rng: np.random.Generator, n: int) -> list[str]:
        rnd = random.Random(int(rng.integers(2**63)))
        out = []
        for _ in range(n):
            if label or rnd.random() < 0.5:
                pair = _with_gcd(rnd, rnd.randint(T.GCD_LOW, T.GCD_HIGH) if label else rnd.choice(GCD_NEAR_MISSES),
                                 low, high)
            else:
                pair = rnd.randrange(low, high), rnd.randrange(low, high)
                if T.GCD_LOW <= math.gcd(*pair) <= T.GCD_HIGH:
                    pair = None
            if pair is not None:
                out.append(f"{pair[0]}{pair[1]}")
        return out

    return draw


def _pair_capacity(target: Target, length: int) -> tuple[int, int] | None:
    """Exact (negatives, positives) the two-number generators can reach, for L <= 6."""
    if length > 6:
        return None
    digits = length // 2
    values = np.arange(10 ** (digits - 1), 10**digits, dtype=np.int64)
    a, b = np.meshgrid(values, values, indexing="ij")
    if target.id == "gcd_range":
        g = np.gcd(a, b)
        positive = (g >= T.GCD_LOW) & (g <= T.GCD_HIGH)
        return int(np.count_nonzero(~positive)), int(np.count_nonzero(positive))
    from sympy import isprime

    prime = np.array([isprime(int(v)) for v in values])
    pa, pb = np.meshgrid(prime, prime, indexing="ij")
    same = pa == pb
    return int(np.count_nonzero(~same)), int(np.count_nonzero(same))


# ---------------------------------------------------------------- graph_has_cycle (fn_aa)


def _graph_with_rank(rnd: random.Random, n_edges: int, rank: int) -> str:
    """A random edge list with exactly `rank` = E - V + C, as uDDvDD tokens.

    n_edges - rank forest edges each join two different components (so they close no cycle),
    then `rank` edges each join two vertices of one component (a self-loop when both are the same);
    edge order and direction are shuffled afterwards. The forest keeps enough unused vertex ids
    for its remaining edges, and the length check keeps it within the 99 ids.
    """
    n_forest = n_edges - rank
    # 2 ids per forest edge at most (+1 for a lone self-loop vertex); never more than the 99 ids.
    ids = rnd.sample(range(1, T.GRAPH_MAX_VERTEX + 1), min(T.GRAPH_MAX_VERTEX, 2 * n_forest + 1))
    component: dict[int, int] = {}  # vertex -> component label
    edges: list[tuple[int, int]] = []

    def fresh(label: int) -> int:
        v = ids.pop()
        component[v] = label
        return v

    for step in range(n_forest):
        vertices = list(component)
        labels = sorted(set(component.values()))
        spare = len(ids) - (n_forest - step - 1)  # fresh ids this edge may use and still finish
        options = [kind for kind, ok in (("new-new", spare >= 2), ("new-old", vertices and spare >= 1),
                                         ("old-old", len(labels) >= 2)) if ok]
        kind = rnd.choice(options)
        if kind == "new-new":
            u, v = fresh(step), fresh(step)
        elif kind == "new-old":
            v = rnd.choice(vertices)
            u = fresh(component[v])
        else:
            keep, merge = rnd.sample(labels, 2)
            u = rnd.choice([x for x in vertices if component[x] == keep])
            v = rnd.choice([x for x in vertices if component[x] == merge])
            for x in vertices:
                if component[x] == merge:
                    component[x] = keep
        edges.append((u, v))
    if not component:
        fresh(-1)
    vertices = list(component)
    for _ in range(rank):
        u = rnd.choice(vertices)
        edges.append((u, rnd.choice([x for x in vertices if component[x] == component[u]])))
    rnd.shuffle(edges)
    return "".join(f"u{u:02d}v{v:02d}" if rnd.random() < 0.5 else f"u{v:02d}v{u:02d}" for u, v in edges)


def _graph_sampler(length: int, label: int) -> Draw:
    n_edges = T.graph_edges(length)
    threshold = T.graph_threshold(n_edges)
    # Positives have rank threshold+1 .. 2*threshold+1 (capped at E), negatives 0 .. threshold:
    # both classes sit near the decision boundary instead of at trivial extremes.
    # A forest part of k edges needs k + 1 of the 99 ids, hence the lower end for negatives.
    if label:
        ranks = range(threshold + 1, min(n_edges, 2 * threshold + 1) + 1)
    else:
        ranks = range(max(0, n_edges - T.GRAPH_MAX_VERTEX + 1), threshold + 1)

    def draw(rng: np.random.Generator, n: int) -> list[str]:
        # Per-graph choices are many and tiny: the stdlib generator (seeded from rng) is much
        # faster for them than numpy scalar calls.
        rnd = random.Random(int(rng.integers(2**63)))
        return [_graph_with_rank(rnd, n_edges, rnd.choice(ranks)) for _ in range(n)]

    return draw


# fn_aa's `upstream` variant: LLM_PV's CycleDetectionDataGenerator family, written here from its description.
# V = E vertices; positives: disjoint triangles, the rest paired off, then random edges inside the triangles'
# vertices; negatives: a random spanning tree plus random extra edges; ids scrambled to 01..99, directions and
# order shuffled, short lists padded with u00v00. Its distinct-vertex count separates the classes (the README's
# shortcut table); it is offered where it yields both classes (UPSTREAM_GRAPH_MIN_LENGTH and up).
UPSTREAM_GRAPH_MIN_LENGTH = 36
GRAPH_VARIANTS = {
    "upstream": "LLM_PV's graph family (triangles vs a spanning tree on V = E vertices), for L >= 36; "
                "its distinct-vertex count separates the classes",
}


def _upstream_graph(rnd: random.Random, n_edges: int, high: bool) -> str:
    vertices = list(range(n_edges))
    edges: list[tuple[int, int]] = []
    seen: set[tuple[int, int]] = set()

    def add(u: int, v: int) -> None:
        key = (min(u, v), max(u, v))
        if key not in seen:
            seen.add(key)
            edges.append((u, v))

    if high:
        used = 0
        while n_edges - len(edges) >= 3 and used + 3 <= n_edges:  # disjoint triangles
            a, b, c = vertices[used : used + 3]
            for u, v in ((a, b), (b, c), (c, a)):
                add(u, v)
            used += 3
        spare = vertices[used:]
        while len(edges) < n_edges and len(spare) >= 2:  # the rest paired off
            add(spare.pop(), spare.pop())
        inside = vertices[:used] if used > 1 else vertices
        for _ in range(10 * n_edges):  # then random edges among the triangles' vertices
            if len(edges) >= n_edges:
                break
            add(*rnd.sample(inside, 2))
    else:
        order = vertices[:]
        rnd.shuffle(order)
        for i in range(1, len(order)):  # a random spanning tree
            add(order[rnd.randint(0, i - 1)], order[i])
        for _ in range(10 * n_edges):
            if len(edges) >= n_edges:
                break
            add(*rnd.sample(vertices, 2))
    edges = edges[:n_edges]
    present = sorted({v for e in edges for v in e})
    ids = dict(zip(present, rnd.sample(range(1, T.GRAPH_MAX_VERTEX + 1), len(present)), strict=True))
    tokens = [f"u{ids[u]:02d}v{ids[v]:02d}" if rnd.random() > 0.5 else f"u{ids[v]:02d}v{ids[u]:02d}" for u, v in edges]
    rnd.shuffle(tokens)
    return "".join(tokens + ["u00v00"] * (n_edges - len(tokens)))


def _upstream_graph_sampler(target: Target, length: int, label: int) -> Draw:
    n_edges = T.graph_edges(length)

    def draw(rng: np.random.Generator, n: int) -> list[str]:
        # Kept only where our label agrees (the store checks every label against the target's rule).
        rnd = random.Random(int(rng.integers(2**63)))
        return [x for x in (_upstream_graph(rnd, n_edges, bool(label)) for _ in range(n)) if target.label(x) == label]

    return draw


def check_variant_length(target: Target, length: int, variant: str | None) -> None:
    """UsageError for a variant at a length it cannot produce both classes at."""
    if target.id == "fn_aa" and variant == "upstream" and length < UPSTREAM_GRAPH_MIN_LENGTH:
        from llm_erm.errors import UsageError

        raise UsageError(f"fn_aa's upstream graph family makes no positive below L={UPSTREAM_GRAPH_MIN_LENGTH} "
                         f"(upstream's generator never finishes there), got {length}: use a longer length or "
                         "the default sampling")


# ---------------------------------------------------------------- dispatch


def _pool_sampler(pool: tuple[str, ...]) -> Draw:
    """A labelled file's inputs of one class, each call a fresh random order of the pool."""

    def draw(rng: np.random.Generator, n: int) -> list[str]:
        return [pool[i] for i in rng.permutation(len(pool))[:n]]

    return draw


# Named sampling variants per target (name -> what it draws); None is the default: the paper's sampling.
VARIANTS: dict[str, dict[str, str]] = {"fn_g": PALINDROME_VARIANTS, "fn_aa": GRAPH_VARIANTS}


def class_sampler(target: Target, length: int, label: int, variant: str | None = None) -> Draw:
    """Candidate inputs of `target` at `length` whose label is `label` (drawn as `variant` says)."""
    if target.examples is not None:
        return _pool_sampler(target.examples[label])
    if target.id in ("fn_c", "fn_d"):
        return _pattern_sampler(T.PATTERN_1 if target.id == "fn_c" else T.PATTERN_2, length, label)
    if target.id == "fn_g":
        return _palindrome_sampler(length, label, variant)
    if target.id == "fn_h":
        return _dyck2_sampler(length, label)
    if target.id in PRIME_FAMILY:
        return _prime_sampler(target, length, label)
    if target.id == "fn_aa":
        return _upstream_graph_sampler(target, length, label) if variant == "upstream" else _graph_sampler(length, label)
    if target.id == "two_primes":
        return _two_primes_sampler(length, label)
    if target.id == "gcd_range":
        return _gcd_sampler(length, label)
    if target.alphabet in ("binary", "decimal"):
        return _uniform_filtered(target, length, label)
    raise ValueError(f"no generator for {target.id} ({target.alphabet})")


def _count_containing(pattern: str, length: int) -> int:
    """Binary strings of `length` that contain `pattern`, by a prefix automaton (KMP-style)."""

    def step(state: int, bit: str) -> int:
        text = pattern[:state] + bit
        while text and not pattern.startswith(text):
            text = text[1:]
        return len(text)

    counts = [1] + [0] * (len(pattern) - 1)  # strings avoiding the pattern, by matched prefix length
    for _ in range(length):
        new = [0] * len(pattern)
        for state, count in enumerate(counts):
            for bit in "01":
                nxt = step(state, bit)
                if nxt < len(pattern):
                    new[nxt] += count
        counts = new
    return 2**length - sum(counts)


def class_capacity(target: Target, length: int, variant: str | None = None) -> tuple[int, int] | None:
    """(negatives, positives): distinct inputs each class's generator can produce, or None when
    both are plentiful (far beyond any sensible request)."""
    if target.examples is not None:
        return len(target.examples[0]), len(target.examples[1])
    if target.id in ("fn_c", "fn_d"):
        positives = _count_containing(T.PATTERN_1 if target.id == "fn_c" else T.PATTERN_2, length)
        return 2**length - positives, positives
    if target.id == "fn_g":
        return palindrome_capacity(length, variant)
    if target.id == "fn_h":
        positives = dyck2_count(length)
        return 2**length - positives, positives
    if target.id in PRIME_FAMILY:
        return _prime_capacity(target, length)
    if target.id in ("two_primes", "gcd_range"):
        return _pair_capacity(target, length)
    if target.id == "fn_aa" or target.table is not None:
        return None
    base = 10 if target.alphabet == "decimal" else 2
    if base**length > ENUMERATE_MAX:
        return None
    symbols = np.array(np.unravel_index(np.arange(base**length), (base,) * length), dtype=np.uint8).T
    fast = batch_label(target, length) if base == 2 else None
    labels = fast(symbols) if fast else np.array([target.label(x) for x in symbols_to_strings(symbols)])
    positives = int(np.count_nonzero(labels))
    return base**length - positives, positives


PROBE_DRAWS = 4096


def probe_classes(target: Target, length: int) -> tuple[int, int]:
    """(negatives, positives) among PROBE_DRAWS uniform strings: a cheap check, before any work, that
    a user function takes both values (the generator itself would also give up, but later)."""
    base = 10 if target.alphabet == "decimal" else 2
    symbols = np.random.default_rng(0).integers(0, base, size=(PROBE_DRAWS, length), dtype=np.uint8)
    positives = sum(target.label(x) for x in symbols_to_strings(symbols))
    return PROBE_DRAWS - positives, positives
