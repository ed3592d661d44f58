"""The enumerate proposer: reads the prompt, enumerates a generic DSL, and its programs pass the real verifier."""

from __future__ import annotations

import json
import random

import gmpy2
import pytest

from llm_erm.datasets import DatasetSpec, build_dataset
from llm_erm.datasets.tabular import parse_row
from llm_erm.errors import UsageError
from llm_erm.proposers.base import PermanentProposerError, ProposeRequest, Usage
from llm_erm.proposers.dsl import ISPRIME_SOURCE, enumerate_programs, mine_substrings
from llm_erm.proposers.enumerate import EnumerateProposer, parse_training_examples
from llm_erm.proposers.prompt import build_prompt
from llm_erm.proposers.tabular_rules import enumerate_rules
from llm_erm.verify import Sandbox, verify_candidate

SIZES = dict(train_size=100, val_size=100, test_size=1000)


@pytest.fixture(scope="module")
def datasets_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("datasets")


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox() as box:
        yield box


def dataset(target: str, length: int, datasets_dir):
    return build_dataset(DatasetSpec(target, length, **SIZES), datasets_dir)


def propose(dataset, attempt: int = 1, proposer: EnumerateProposer | None = None, **prompt_options):
    request = ProposeRequest(build_prompt(dataset, **prompt_options), trial=1, attempt=attempt)
    return (proposer or EnumerateProposer()).propose(request)


def run_here(source: str, inputs: list[str]) -> list[int]:
    """Evaluate one of *our own* rendered programs in-process (test only): checks the renderer."""
    namespace: dict = {}
    exec(source, namespace)
    return [int(bool(namespace["f"](x))) for x in inputs]


# -- the must-hold: short targets learned at L=20, scored by the sandboxed verifier -------------------


@pytest.mark.parametrize("target", ["fn_a", "fn_c", "fn_d", "fn_g", "fn_e"])
def test_short_targets_reach_validation_one_at_L20(target, datasets_dir, sandbox):
    data = dataset(target, 20, datasets_dir)
    proposal = propose(data)
    result = verify_candidate(proposal.text, data, sandbox)
    assert result.status == "ok", result.first_error
    assert result.train_acc == 1.0 and result.val_acc == 1.0
    assert result.test_acc >= 0.99
    assert proposal.extra["train_acc"] == 1.0 and not proposal.extra["budget_exhausted"]
    assert proposal.extra["programs_enumerated"] < 200_000


def test_decimal_primality_program_is_stdlib_only_and_verifies(datasets_dir, sandbox):
    data = dataset("fn_i", 20, datasets_dir)
    proposal = propose(data)
    code = json.loads(proposal.text)["code"]
    assert "def isprime" in code and "import" not in code
    result = verify_candidate(proposal.text, data, sandbox)
    assert result.status == "ok" and result.val_acc == 1.0


def test_emitted_primality_helper_agrees_with_gmpy2():
    namespace: dict = {}
    exec(ISPRIME_SOURCE, namespace)
    isprime = namespace["isprime"]
    numbers = list(range(-3, 20_000))
    numbers += [561, 41041, 3215031751, 2152302898747, 3474749660383, 341550071728321, 3825123056546413051]
    rng = random.Random(7)
    numbers += [rng.randrange(10**99, 10**100) for _ in range(200)]
    numbers += [int(gmpy2.next_prime(rng.randrange(10**59, 10**60))) for _ in range(20)]
    assert [isprime(n) for n in numbers] == [n >= 2 and bool(gmpy2.is_prime(n)) for n in numbers]


# -- cost growth: the point of the baseline ---------------------------------------------------------


def test_programs_enumerated_grow_from_3_parity_to_10_parity(datasets_dir):
    proposer = EnumerateProposer(max_programs=100_000)
    three = propose(dataset("fn_e", 20, datasets_dir), proposer=proposer).extra
    ten = propose(dataset("fn_f", 20, datasets_dir), proposer=proposer).extra
    assert three["train_acc"] == 1.0 and not three["budget_exhausted"]
    assert ten["budget_exhausted"] and ten["train_acc"] < 1.0
    assert ten["programs_enumerated"] == 100_000 > three["programs_enumerated"]


def test_budget_in_programs_is_exact_and_reported():
    rng = random.Random(3)
    inputs = ["".join(rng.choice("01") for _ in range(12)) for _ in range(40)]
    labels = [int(x[1]) ^ int(x[5]) ^ int(x[7]) ^ int(x[9]) for x in inputs]
    found = enumerate_programs(inputs, labels, max_programs=500)
    assert found.programs_enumerated == 500
    assert found.budget_exhausted and not found.solved
    assert found.distinct_programs <= 500


# -- what the proposer sees and returns -------------------------------------------------------------


def test_reads_exactly_the_training_split_from_the_prompt(datasets_dir):
    data = dataset("fn_c", 20, datasets_dir)
    train = data.split("train")
    for variant in (None, "explain"):
        assert parse_training_examples(build_prompt(data, variant=variant)) == (train.inputs, train.labels)


def test_prompt_without_a_data_block_is_refused_permanently():
    request = ProposeRequest("Find f. Examples: 0101 -> 1", trial=1, attempt=1)
    with pytest.raises(PermanentProposerError, match="data block"):
        EnumerateProposer().propose(request)


def request_for(prompt: str, attempt: int = 1) -> ProposeRequest:
    return ProposeRequest(prompt, trial=1, attempt=attempt, seed=0)


def test_tabular_rows_are_learned_as_the_dicts_f_receives():
    prompt = "**Data Examples:**\n```\nage:39,job:a -> 1\nage:20,job:b -> 0\nage:51,job:? -> 1\nage:18,job:a -> 0\n```\n"
    proposal = EnumerateProposer().propose(request_for(prompt))
    code = json.loads(proposal.text)["code"]
    assert proposal.extra["train_acc"] == 1.0 and proposal.extra["size"] == 1
    rows = [parse_row(r) for r in ("age:39,job:a", "age:20,job:b", "age:51,job:?", "age:18,job:a")]
    assert run_here(code, rows) == [1, 0, 1, 0]
    assert "x['age']" in code


def test_every_rendered_rule_computes_what_the_search_scored():
    rnd = random.Random(4)
    rows = [{"n": rnd.choice([None, rnd.randint(0, 9), rnd.random() * 10]), "c": rnd.choice(["u", "v", None, 3]),
             "m": rnd.randint(-3, 3)} for _ in range(60)]
    labels = [int((r["n"] is not None and r["n"] > 4) != (r["c"] == "u")) for r in rows]
    found = enumerate_rules(rows, labels, max_programs=30_000)
    assert found.best and found.programs_enumerated <= 30_000
    for program in found.best:
        predictions = run_here(program.source, rows)
        assert sum(p == y for p, y in zip(predictions, labels, strict=True)) / len(rows) == program.train_acc
    sizes = [p.size for p in found.best]
    accuracies = [p.train_acc for p in found.best]
    assert accuracies == sorted(accuracies, reverse=True)
    assert all(a > b or s1 <= s2 for a, b, s1, s2 in zip(accuracies, accuracies[1:], sizes, sizes[1:], strict=False))


def test_the_tabular_budget_in_programs_is_exact():
    rows = [{"a": i % 7, "b": i % 5, "c": i % 3} for i in range(50)]
    labels = [int((i * 7919) % 11 > 5) for i in range(50)]
    found = enumerate_rules(rows, labels, max_programs=500)
    assert found.programs_enumerated == 500 and found.budget_exhausted and not found.solved


@pytest.mark.parametrize(("target", "floor"), [("fn_q", 0.8), ("fn_n_classic", 0.9), ("fn_t", 0.85), ("fn_u", 0.85)])
def test_tabular_tables_are_learned_and_verify_in_the_sandbox(target, floor, datasets_dir, sandbox):
    from llm_erm.datasets import get_target

    data = build_dataset(DatasetSpec(target, get_target(target).default_lengths[0], **SIZES), datasets_dir)
    proposal = EnumerateProposer().propose(request_for(build_prompt(data)))
    result = verify_candidate(proposal.text, data, sandbox)
    assert result.status == "ok" and result.val_errors == 0 and result.test_errors == 0  # None is handled
    assert result.train_acc == proposal.extra["train_acc"]
    assert result.val_acc >= floor and result.test_acc >= floor - 0.05


def test_raw_and_clean_rows_are_learned_alike(datasets_dir, sandbox):
    scores = []
    for protocol in ("raw", "clean"):
        data = build_dataset(DatasetSpec("fn_q", 36, protocol=protocol, **SIZES), datasets_dir)
        proposal = EnumerateProposer().propose(request_for(build_prompt(data)))
        result = verify_candidate(proposal.text, data, sandbox)
        scores.append((proposal.extra["size"], result.train_acc, result.val_acc, result.test_acc))
    assert scores[0] == scores[1], "the clean protocol keeps every distinction the raw rows make"


def test_attempts_walk_down_the_ranking_of_distinct_programs(datasets_dir):
    data = dataset("fn_j", 20, datasets_dir)  # automata parity: no short exact program, a real ranking
    proposer = EnumerateProposer(max_programs=20_000)
    proposals = [propose(data, attempt=a, proposer=proposer) for a in range(1, 6)]
    codes = [json.loads(p.text)["code"] for p in proposals]
    train = data.split("train")
    behaviours = [tuple(run_here(code, train.inputs)) for code in codes]
    assert len(set(behaviours)) == 5  # observationally distinct on the training inputs
    accuracies = [p.extra["train_acc"] for p in proposals]
    assert accuracies == sorted(accuracies, reverse=True)
    for behaviour, accuracy in zip(behaviours, accuracies, strict=True):
        assert (
            sum(b == y for b, y in zip(behaviour, train.labels, strict=True)) / len(train.labels) == accuracy
        )
    # the k attempts share one enumeration
    assert len({p.extra["seconds"] for p in proposals}) == 1
    with pytest.raises(PermanentProposerError, match="attempt 101"):
        propose(data, attempt=101, proposer=proposer)


def test_proposal_fields_and_identity(datasets_dir):
    proposer = EnumerateProposer(max_programs=1000, max_seconds=5)
    proposal = propose(dataset("fn_a", 20, datasets_dir), proposer=proposer)
    assert proposer.kind == "enumerate"
    assert proposer.identity() == {
        "provider": "enumerate",
        "max_programs": 1000,
        "max_seconds": 5.0,
        "dsl_version": proposer.identity()["dsl_version"],
    }
    assert proposal.model == "enumerate" and proposal.cost_usd == 0.0 and proposal.usage == Usage()
    assert proposal.latency_s >= 0
    assert set(proposal.extra) >= {"programs_enumerated", "seconds", "train_acc", "size", "budget_exhausted"}
    assert proposal.extra["size"] == 3  # x.count(c) % 2
    assert json.loads(proposal.text)["code"].startswith("def f(x):")
    proposer.preflight()


@pytest.mark.parametrize("kwargs", [dict(max_programs=0), dict(max_programs=1.5), dict(max_seconds=0)])
def test_bad_budgets_are_usage_errors(kwargs):
    with pytest.raises(UsageError, match="enumerate max_"):
        EnumerateProposer(**kwargs)


# -- the DSL itself ---------------------------------------------------------------------------------


COMMON_OPERATORS = [
    "[::-1]",
    "[:len(",
    "[len(",
    "[:5]",
    ".count(",
    " in ",
    "isprime(",
    "% 2)",
    "% 3)",
    " == ",
    " < ",
    "(not ",
]


@pytest.mark.parametrize(
    "alphabet,length,operators",
    [
        ("01", 12, COMMON_OPERATORS + ["int(x[", "int(x, 2)", " & ", " | ", " ^ "]),
        ("0123456789", 6, COMMON_OPERATORS + ["int(x[", "int(x)", " + "]),
    ],
)
def test_every_rendered_program_computes_what_the_enumerator_scored(alphabet, length, operators):
    """All kept programs of a search (random labels: nothing fits, so it walks every operator), run as
    Python, reproduce the training accuracy that their vectorised evaluation gave."""
    rng = random.Random(length)
    inputs = ["".join(rng.choice(alphabet) for _ in range(length)) for _ in range(60)]
    labels = [rng.randrange(2) for _ in inputs]
    found = enumerate_programs(inputs, labels, max_programs=4000, keep=10**6)
    assert not found.solved and len(found.best) > 800
    rendered = " ".join(p.expression for p in found.best)
    assert [op for op in operators if op not in rendered] == []
    for program in found.best:
        predictions = run_here(program.source, inputs)
        hits = sum(p == y for p, y in zip(predictions, labels, strict=True))
        assert hits / len(labels) == program.train_acc, program.expression


def test_enumeration_is_deterministic_for_a_program_budget(datasets_dir):
    train = dataset("fn_b", 20, datasets_dir).split("train")
    first = enumerate_programs(train.inputs, train.labels, max_programs=5000)
    second = enumerate_programs(train.inputs, train.labels, max_programs=5000)
    assert first.best == second.best and first.programs_enumerated == second.programs_enumerated


def test_the_smallest_fitting_program_is_found_first():
    rng = random.Random(4)
    inputs = ["".join(rng.choice("01") for _ in range(10)) for _ in range(60)]
    single = enumerate_programs(inputs, [int(x[3]) for x in inputs])
    # x, then the bits 0..3: the search stops at the first fit
    assert (single.best[0].expression, single.best[0].size, single.programs_enumerated) == ("int(x[3])", 1, 5)
    negated = enumerate_programs(inputs, [1 - int(x[3]) for x in inputs])
    assert (negated.best[0].expression, negated.best[0].size) == ("(not int(x[3]))", 2)


def test_mined_substrings_rank_the_planted_pattern_first():
    rng = random.Random(5)
    negatives = [
        x for x in ("".join(rng.choice("01") for _ in range(20)) for _ in range(400)) if "00111111" not in x
    ][:50]
    positives = []
    for _ in range(50):
        x = "".join(rng.choice("01") for _ in range(20))
        at = rng.randrange(13)
        positives.append(x[:at] + "00111111" + x[at + 8 :])
    constants = mine_substrings(positives + negatives, [1] * 50 + [0] * 50)
    assert constants[0] == "00111111"
    assert len(constants) == 16 and all(1 <= len(c) <= 8 for c in constants)
