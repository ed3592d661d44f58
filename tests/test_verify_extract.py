"""Extraction of the program from model answers, sanitising, and code-size measures (no sandbox needed)."""

import ast
import json
import time

import pytest

from llm_erm.verify import extract_code, sanitize_code
from llm_erm.verify.extract import drop_thinking
from llm_erm.verify.sanitize import strip_outer_fence, try_sanitize
from llm_erm.verify.score import measure

PARITY = "def f(x):\n    return x.count('1') % 2\n"


# ---- extraction: every form extract_code accepts ---------------------------------------------------------


def test_whole_text_as_json() -> None:
    assert extract_code(json.dumps({"code": PARITY})) == PARITY


def test_whole_json_with_other_keys_and_whitespace() -> None:
    text = "\n  " + json.dumps({"reasoning": "count ones", "code": PARITY, "confidence": 0.9}) + "\n"
    assert extract_code(text) == PARITY


def test_json_inside_prose() -> None:
    text = f"Here is my answer:\n{json.dumps({'code': PARITY})}\nIt counts the ones."
    assert extract_code(text) == PARITY


def test_json_inside_a_json_fence() -> None:
    text = "Answer:\n```json\n" + json.dumps({"code": PARITY}, indent=2) + "\n```\n"
    assert extract_code(text) == PARITY


def test_several_json_objects_the_last_with_code_wins() -> None:
    first = "def f(x):\n    return 0\n"
    text = (
        f"Draft: {json.dumps({'code': first})}\n"
        f"Better: {json.dumps({'code': PARITY})}\n"
        f"Notes: {json.dumps({'note': 'no code in this one'})}"
    )
    assert extract_code(text) == PARITY


def test_nested_json_object_with_code() -> None:
    assert extract_code(json.dumps({"answer": {"code": PARITY}})) == PARITY


def test_invalid_json_with_raw_newlines_inside_the_string() -> None:
    text = 'Final: {"code": "def f(x):\n    return x.count(\'1\') % 2\n"}'
    with pytest.raises(json.JSONDecodeError):
        json.loads(text[len("Final: "):])  # really invalid JSON
    assert extract_code(text) == PARITY


def test_invalid_json_with_raw_tabs_and_newlines_as_the_whole_text() -> None:
    text = '{"code": "def f(x):\n\treturn 1\n"}'
    assert extract_code(text) == "def f(x):\n\treturn 1\n"


def test_fenced_python_block() -> None:
    text = f"Sure.\n\n```python\n{PARITY}```\n\nThis works because..."
    assert extract_code(text) == PARITY


def test_the_fenced_block_with_a_def_is_preferred_and_the_last_one_wins() -> None:
    text = (
        "```python\nprint(f('0101'))\n```\n"
        "```py\ndef f(x):\n    return 0\n```\n"
        f"```python\n{PARITY}```\n"
        "```text\n0101 -> 0\n```\n"
    )
    assert extract_code(text) == PARITY


def test_bare_def_in_prose_with_its_imports() -> None:
    text = (
        "I think this is parity.\n\nimport math\n\ndef helper(x):\n    return x.count('1')\n\n"
        "def f(x):\n    return helper(x) % 2\n\nThat should score well."
    )
    code = extract_code(text)
    assert code.startswith("import math\n")
    assert "def helper" in code and "return helper(x) % 2" in code
    assert "should score" not in code
    ast.parse(code)


def test_a_plain_python_file_is_taken_whole() -> None:
    text = "POSITIONS = [1, 2]\n\n\ndef f(x):\n    return sum(int(x[p]) for p in POSITIONS) % 2\n"
    assert extract_code(text) == text


def test_a_broken_bare_def_is_still_code_so_it_scores_syntax_error() -> None:
    text = "Answer below\ndef f(x)\n    return 1\n"
    code = extract_code(text)
    assert code is not None and code.startswith("def f(x)")


def test_think_block_is_dropped_first() -> None:
    decoy = json.dumps({"code": "def f(x):\n    return 0\n"})
    text = f"<think>maybe {decoy} ... no.</think>\n```python\n{PARITY}```"
    assert extract_code(text) == PARITY


def test_thinking_without_opening_tag_and_unclosed_thinking() -> None:
    assert drop_thinking("reasoning...</think>answer") == "answer"
    assert drop_thinking("answer<think>trailing thoughts") == "answer"
    assert extract_code("<think>def f(x):\n    return 0\n") is None


@pytest.mark.parametrize(
    "text",
    ["", "I cannot solve this.", '{"answer": 1}', "```\n0101 -> 1\n```", '{"code": ""}', "<think>hmm</think>"],
)
def test_no_code(text: str) -> None:
    assert extract_code(text) is None


def test_prose_full_of_braces_stays_fast_enough() -> None:
    text = '{"code" ' + "{ " * 20000 + json.dumps({"code": PARITY})
    assert extract_code(text) == PARITY


# ---- sanitising -----------------------------------------------------------------------------------------


def test_sanitize_strips_fence_comments_and_docstrings_but_keeps_strings() -> None:
    code = (
        "```python\n"
        '"""Module docstring."""\n'
        "import math  # needed\n"
        "# a comment line\n"
        "def f(x):\n"
        '    """Docstring of f."""\n'
        "    marker = '# not a comment'\n"
        "    return (x.count('1') + len(marker) * 0) % 2  # parity\n"
        "class Helper:\n"
        "    '''Only a docstring.'''\n"
        "```"
    )
    clean = sanitize_code(code)
    assert "```" not in clean
    assert "needed" not in clean and "a comment line" not in clean and "# parity" not in clean
    assert "docstring" not in clean.lower()
    assert "'# not a comment'" in clean
    tree = ast.parse(clean)
    assert [type(node).__name__ for node in tree.body] == ["Import", "FunctionDef", "ClassDef"]
    assert isinstance(tree.body[2].body[0], ast.Pass)  # a body that was only a docstring keeps a pass


def test_sanitize_keeps_behaviour() -> None:
    code = "def f(x):\n    '''doc'''\n    # comment\n    total = 0\n    for c in x:\n        total += c == '1'\n    return total % 2\n"
    clean = sanitize_code(code)
    namespaces = [{}, {}]
    exec(code, namespaces[0])  # trusted test code
    exec(clean, namespaces[1])
    for x in ["", "1", "0110", "111", "1011001"]:
        assert namespaces[0]["f"](x) == namespaces[1]["f"](x)


def test_code_that_does_not_parse_is_left_alone() -> None:
    broken = "def f(x)\n    return 1  # comment stays\n"
    assert try_sanitize(broken) is None
    assert sanitize_code(broken) == broken
    assert sanitize_code("```python\n" + broken + "```") == broken


def test_strip_outer_fence_only_strips_an_outer_one() -> None:
    assert strip_outer_fence("```py\nx = 1\n```") == "x = 1\n"
    assert strip_outer_fence("x = 1\n") == "x = 1\n"


@pytest.mark.parametrize("code", ["-" * 100000 + "1", "(" * 100000, "x" + "[0]" * 100000, "\x00def f(x): pass"])
def test_pathological_code_is_refused_without_harming_the_orchestrator(code: str) -> None:
    assert try_sanitize(code) is None
    lines, nodes, branches = measure(code)
    assert nodes is None and branches is None


# ---- code size ------------------------------------------------------------------------------------------


def test_measures_of_a_tiny_program() -> None:
    # Module, FunctionDef, arguments, arg, Return, Constant
    assert measure("def f(x):\n\n    return 1\n") == (2, 6, 0)


def test_branches_count_decision_points() -> None:
    code = (
        "def f(x):\n"
        "    if x and len(x) > 2 or x == '1':\n"  # if: 1, and/or: 2
        "        return 1\n"
        "    while False:\n"  # 1
        "        pass\n"
        "    try:\n"
        "        y = 1 if x else 0\n"  # 1
        "    except ValueError:\n"  # 1
        "        y = 0\n"
        "    return sum(1 for c in x if c == '1' if y >= 0) % 2\n"  # comprehension 1 + 2 ifs
    )
    assert measure(code)[2] == 2 + 1 + 1 + 1 + 1 + 3


@pytest.mark.parametrize(
    "text",
    ['{"' * 50000, '{"code": "' + "x" * 100000, '{"a": "' * 20000 + '"code"', '{"code": 1, "x": ' * 20000, "[" * 100000],
)
def test_pathological_json_is_refused_cleanly(text: str) -> None:
    assert extract_code(text) is None


def test_deeply_nested_json_around_the_answer() -> None:
    text = "[" * 100000 + json.dumps({"code": PARITY}) + "]" * 100000
    assert extract_code(text) == PARITY


# ---- the program is the one the scorer calls (issue 11) ------------------------------------------------


def test_a_usage_example_after_the_solution_does_not_replace_it() -> None:
    text = (
        "Here is the solution:\n```python\n" + PARITY + "```\n\n"
        "And how to check it:\n```python\ndef check():\n    assert f('011') == 0\n    print('ok')\n```\n"
    )
    assert extract_code(text) == PARITY


def test_the_last_block_that_defines_f_wins_over_later_helpers() -> None:
    first = "def f(x):\n    return 0\n"
    text = f"```python\n{first}```\nBetter:\n```python\n{PARITY}```\n```python\ndef helper(y):\n    return y\n```\n"
    assert extract_code(text) == PARITY


def test_without_f_the_last_block_with_a_def_is_taken() -> None:
    text = "```python\nx = 1\n```\n```python\ndef solve(x):\n    return 1\n```\n```python\nprint(solve('0'))\n```\n"
    assert extract_code(text) == "def solve(x):\n    return 1\n"


def test_json_code_that_defines_f_wins_over_a_later_example() -> None:
    example = "def test():\n    return f('0')\n"
    text = f"Answer: {json.dumps({'code': PARITY})}\nExample: {json.dumps({'code': example})}"
    assert extract_code(text) == PARITY
    assert extract_code(json.dumps({"answer": {"code": PARITY}, "usage": {"code": example}})) == PARITY


def test_an_unclosed_fence_at_the_end_of_a_truncated_answer() -> None:
    text = "Sure:\n```python\n" + PARITY
    assert extract_code(text) == PARITY


ANSWER_BYTES = 80_000
ADVERSARIAL = {
    "a long run of spaces after code": "def f(x):\n    return 1\n" + "a" + " " * ANSWER_BYTES + "\nthe end",
    "a run of spaces then an equals sign": "Text\ndef f(x):\n    return 1\n" + "a" + " " * ANSWER_BYTES + "=",
    "spaces and commas": "def f(x):\n    return 1\nhello " + ", " * (ANSWER_BYTES // 2) + "world",
    "thousands of unclosed think tags": "<think>" * (ANSWER_BYTES // 7),
    "thousands of closes": "</think>x" * (ANSWER_BYTES // 9) + PARITY,
    "thousands of fences": "```python\n" * (ANSWER_BYTES // 10),
    "thousands of object starts": '{"a' * (ANSWER_BYTES // 3) + '"code"',
    "prose lines that look like code": "Intro\ndef f(x):\n    return 1\n" + "a = b c\n" * (ANSWER_BYTES // 8),
    "many broken bare defs": "def f(x)\n" * (ANSWER_BYTES // 9),
    "a long line of spaces in a fence": "```python\n" + " " * ANSWER_BYTES + "\n" + PARITY + "```\n",
}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_extraction_and_sanitising_take_linear_time(name: str) -> None:
    """80 KB answers built to make a regular expression or a parse loop blow up (one took 15.8 s):
    each is handled in a small fraction of a second, and a 10x longer one costs no more than ~10x."""
    text = ADVERSARIAL[name]
    started = time.process_time()  # CPU time: a busy machine stretches the wall clock, not this
    code = extract_code(text)
    if code is not None:
        sanitize_code(code)
        measure(code)
    elapsed = time.process_time() - started
    assert elapsed < 1.0, f"{name}: {elapsed:.2f} s"


def test_the_cost_per_answer_is_bounded_for_huge_answers() -> None:
    text = "def f(x):\n    return 1\n" + "a" + " " * 5_000_000 + "\n" + "{\"a" * 1_000_000
    started = time.process_time()
    extract_code(text)
    assert time.process_time() - started < 3.0


# ---- sanitising never changes behaviour ----------------------------------------------------------------


OBSERVING = {
    "reads its function's docstring": 'def f(x):\n    """0110"""\n    return int(f.__doc__[len(x) % 4])\n',
    "reads the module docstring": '"""parity"""\nKIND = __doc__\n\ndef f(x):\n    return x.count("1") % 2 if KIND else 0\n',
    "reads a class docstring": 'class T:\n    """1"""\n\ndef f(x):\n    return int(T.__doc__)\n',
    "uses getattr": 'def f(x):\n    """1"""\n    return int(getattr(f, "__d" + "oc__"))\n',
    "inspects itself": 'import inspect\n\ndef f(x):\n    """1"""\n    return int(inspect.getdoc(f))\n',
    "reads line numbers": 'import sys\n# a comment\n\ndef f(x):\n    return sys._getframe().f_lineno % 2\n',
    "reads its code object": 'def f(x):\n    """doc"""\n    return len(f.__code__.co_consts) % 2\n',
}


@pytest.mark.parametrize("name", sorted(OBSERVING))
def test_a_program_that_can_observe_its_docstrings_or_lines_is_kept_as_it_is(name: str) -> None:
    code = OBSERVING[name]
    assert try_sanitize(code) is None
    assert sanitize_code(code) == code
    assert sanitize_code("```python\n" + code + "```") == code


def test_ordinary_programs_are_still_sanitised() -> None:
    code = ('import sys\nimport numpy as np\n\nif __name__ == "__main__":\n    pass\n\n'
            'def f(x):\n    """Parity."""\n    # count\n    return np.stack([1]).sum() * x.count("1") % 2\n')
    clean = try_sanitize(code)
    assert clean is not None and "Parity" not in clean and "# count" not in clean and "__main__" in clean


# ---- issue 20: judged as a reader would ---------------------------------------------------------------


OBSERVING_MORE = {
    "attrgetter with a computed name": 'import operator\n\ndef f(x):\n    """1"""\n    name = "_" * 2 + "d" + "oc" + "_" * 2\n'
                                       '    return int(operator.attrgetter(name)(f))\n',
    "attrgetter imported by name": 'from operator import attrgetter as a\n\ndef f(x):\n    """1"""\n'
                                   '    return int(a("_" * 2 + "doc" + "_" * 2)(f))\n',
    "doctest": 'import doctest\n\ndef f(x):\n    """\n    >>> 1\n    1\n    """\n'
               '    return int(bool(doctest.DocTestFinder().find(f)[0].examples))\n',
    "str.format with a computed field": 'def f(x):\n    """1"""\n    return int(("{0." + "_" * 2 + "doc" + "_" * 2 + "}").format(f))\n',
    "a match class pattern": 'def f(x):\n    """1"""\n    match f:\n        case object(__doc__=d):\n            return int(d)\n',
    "a generator's frame": 'def g():\n    yield 1\n\ndef f(x):\n    return g().gi_frame.f_lineno % 2\n',
}


@pytest.mark.parametrize("name", sorted(OBSERVING_MORE))
def test_docstrings_are_kept_unless_provably_unobservable(name: str) -> None:
    code = OBSERVING_MORE[name]
    assert try_sanitize(code) is None
    assert sanitize_code(code) == code


def test_ordinary_programs_with_format_and_typing_are_sanitised() -> None:
    code = ('from typing import List\nimport itertools\n\ndef f(x: str) -> int:\n    """Parity."""\n'
            '    bits: List[str] = list("{:b}".format(int(x, 2)))\n    return bits.count("1") % 2\n')
    clean = try_sanitize(code)
    assert clean is not None and "Parity" not in clean


def test_think_tags_inside_code_are_code() -> None:
    code = "def f(x):\n    x = x.replace(\"<think>\", \"\").replace('</think>', '')\n    return x.count('1') % 2\n"
    assert extract_code(code) == code
    assert extract_code("```python\n" + code + "```") == code
    assert extract_code(json.dumps({"code": code})) == code
    assert extract_code("<think>\nhmm <b>\n</think>\n```python\n" + code + "```") == code
    # a think block around a fenced block still goes
    assert extract_code("<think>\n```python\ndef f(x):\n    return 0\n```\n</think>\n```python\n" + PARITY + "```") \
        == PARITY


def test_a_dict_literal_in_a_fenced_program_is_code_not_the_answer() -> None:
    code = 'TABLE = {"code": "parity", "k": 2}\n\ndef f(x):\n    return x.count("1") % TABLE["k"]\n'
    assert extract_code("Here:\n```python\n" + code + "```\nDone.") == code
    assert extract_code(code) == code


NESTED_OBJECTS = '{"code": "def f(x):\\n    return 0\\n", "next": ' * 200 + '{"code": "' + "x" * 10 + '"}' + "}" * 200


@pytest.mark.parametrize("text", [
    NESTED_OBJECTS + " " * 200_000,
    "prose " + NESTED_OBJECTS.replace("}", "") + "x" * 200_000,
    "Intro\n" + "def f(x):\n    return (1 +\n" + "    a = b c\n" * 25_000,
    "```python\n" + "def f(x):\n    return 1\n" * 9_000 + "```\n",
])
def test_an_answer_at_the_size_bound_costs_the_orchestrator_under_a_second(text: str) -> None:
    from llm_erm.verify.extract import MAX_ANSWER_CHARS

    text = text[:MAX_ANSWER_CHARS]
    started = time.process_time()
    code = extract_code(text)
    if code is not None:
        sanitize_code(code)
        measure(code)
    assert time.process_time() - started < 1.0
