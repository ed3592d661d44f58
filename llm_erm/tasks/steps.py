"""The grid's steps as Prefect tasks: a thin layer over the science modules.

Caching: only `propose` is cached, by an explicit key (run id, proposer identity, prompt hash, trial,
attempt), because only it costs money. Datasets are content-addressed stores of their own, prompts and
verification are cheap and deterministic, and a finished trial is skipped before any task is created.
"""

from __future__ import annotations

import json
import time
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from llm_erm.datasets import DatasetSpec
from llm_erm.proposers import PermanentProposerError, ProposeRequest, TransientProposerError
from llm_erm.proposers.replay import sha256_text  # the ledger's prompt_sha256 is what replay keys on
from llm_erm.results import ledger
from llm_erm.results.progress import running_marker
from llm_erm.results.rows import attempt_row, finish_trial, request_params_json
from llm_erm.results.schema import SKIPPED_BUDGET
from llm_erm.tasks import runtime

RETRIES = 6


def backoff(first_delay_s: float) -> list[float]:
    """Exponential backoff delays for the propose retries (Prefect adds the jitter)."""
    return [first_delay_s * 2**i for i in range(RETRIES)]


# Retry-After beyond this is not waited for inside a task: the retry gives up and the attempt fails.
MAX_RETRY_AFTER_S = 120.0


def cell_label(spec: DatasetSpec, trial: int | None = None, attempt: int | None = None) -> str:
    label = f"{spec.target} L{spec.length}"
    if trial is not None:
        label += f" t{trial}"
    if attempt is not None:
        label += f" a{attempt}"
    return label


@task(name="generate dataset", task_run_name="dataset {label}", cache_policy=NO_CACHE)
def generate_dataset(run_id: str, spec: DatasetSpec, label: str) -> DatasetSpec:
    """Build (or verify and reuse) the cell's content-addressed store; downstream gets the spec, not data."""
    runtime.get(run_id).dataset(spec)
    return spec


@task(name="build prompt", task_run_name="prompt {label}", cache_policy=NO_CACHE)
def build_prompt(run_id: str, spec: DatasetSpec, label: str) -> str:
    from llm_erm.proposers.prompt import build_prompt as render

    rt = runtime.get(run_id)
    return render(rt.dataset(spec), variant=rt.config.prompt_variant, template=rt.template)


def _propose_cache_key(context: Any, parameters: dict[str, Any]) -> str:
    rt = runtime.get(parameters["run_id"])
    key = {
        "run_id": parameters["run_id"],
        "proposer": rt.proposer.identity(),
        "prompt_sha256": sha256_text(parameters["prompt"]),
        "trial": parameters["trial"],
        "attempt": parameters["attempt"],
    }
    return "propose-" + sha256_text(json.dumps(key, sort_keys=True, default=str))


def retry_on_transient(task, task_run, state) -> bool:  # a plain def: Prefect ignores partials here
    try:
        state.result()
    except TransientProposerError as exc:
        if exc.retry_after_s is not None:
            if exc.retry_after_s > MAX_RETRY_AFTER_S:
                return False
            time.sleep(exc.retry_after_s)  # honour Retry-After on top of the backoff
        return True
    except Exception:
        return False
    return False


@task(
    name="propose",
    task_run_name="propose {label}",
    cache_key_fn=_propose_cache_key,
    result_serializer="json",
    retries=RETRIES,
    retry_delay_seconds=backoff(1.0),
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_on_transient,
)
def propose(run_id: str, spec: DatasetSpec, prompt: str, trial: int, attempt: int, label: str) -> dict:
    """One paid model call (or one enumeration), cached so that a crash never buys it twice."""
    request = ProposeRequest(prompt=prompt, target=spec.target, length=spec.length, trial=trial, attempt=attempt)
    return runtime.get(run_id).proposer.propose(request).to_dict()


@task(name="verify", task_run_name="verify {label}", cache_policy=NO_CACHE)
def verify(run_id: str, spec: DatasetSpec, text: str, label: str) -> dict:
    from llm_erm.verify import verify_candidate

    rt = runtime.get(run_id)
    return verify_candidate(text, rt.dataset(spec), rt.sandbox, sanitize=rt.config.sanitize).to_row()


def _attempt(run_id: str, spec: DatasetSpec, prompt: str, trial: int, attempt: int, identity: dict) -> dict:
    """Propose then verify one attempt; a failed call becomes a row, never an exception.

    The budget is checked and charged while holding a call slot, so a call that waited for a slot
    sees the spend of the calls before it: once the budget is reached no new call starts.
    """
    rt = runtime.get(run_id)
    label = cell_label(spec, trial, attempt)
    with rt.call_slots:
        if rt.budget.exhausted():
            return attempt_row(identity=identity, attempt=attempt, skipped=True)
        try:
            proposal = rt.propose_task(run_id, spec, prompt, trial, attempt, label)
        except (TransientProposerError, PermanentProposerError) as exc:
            return attempt_row(identity=identity, attempt=attempt, propose_error=f"{type(exc).__name__}: {exc}")
        rt.budget.charge(proposal["cost_usd"])  # a cache hit counts too: the run's spend includes it
    verdict = verify(run_id, spec, proposal["text"], label)
    return attempt_row(identity=identity, attempt=attempt, proposal=proposal, verdict=verdict)


@task(name="trial", task_run_name="trial {label}", cache_policy=NO_CACHE)
def run_trial(run_id: str, spec: DatasetSpec, prompt: str, trial: int, label: str) -> dict:
    """Attempts in waves (one at a time by default) until validation 1.0 or k attempts; select; persist.

    Returns the trial's counts for progress reporting; the rows themselves go to the ledger.
    """
    rt = runtime.get(run_id)
    cfg = rt.config
    dataset = rt.dataset(spec)
    identity = {
        "run_id": run_id,
        "target": spec.target,
        "target_name": dataset.target.name,
        "length": spec.length,
        "trial": trial,
        "dataset_id": dataset.dataset_id,
        "dataset_path": str(dataset.path),
        "proposer": rt.proposer.kind,
        "model": cfg.model if rt.proposer.kind.startswith("openai") else rt.proposer.kind,
        "base_url": cfg.base_url,
        "request_params": request_params_json(rt.proposer.identity()),
        "prompt_variant": cfg.prompt_variant,
        "prompt": prompt,
        "prompt_sha256": sha256_text(prompt),
    }
    with running_marker(rt.run_dir, spec.target, spec.length, trial):
        rows = _attempts_until_solved(run_id, spec, prompt, trial, identity)
        ledger.write_trial(rt.run_dir, spec.target, spec.length, trial, rows)
    selected = next((row for row in rows if row.get("selected")), {})
    return {
        "trial": label,
        "attempts": len(rows),
        "solved": any(row.get("stopped_early") for row in rows) or selected.get("val_acc") == 1.0,
        "selected val": selected.get("val_acc"),
        "selected test": selected.get("test_acc"),
        "cost $": round(sum(row.get("cost_usd") or 0.0 for row in rows), 6),
    }


def _attempts_until_solved(run_id: str, spec: DatasetSpec, prompt: str, trial: int, identity: dict) -> list[dict]:
    rt = runtime.get(run_id)
    cfg = rt.config
    rows: list[dict] = []
    attempt = 1
    while attempt <= cfg.attempts:
        wave = range(attempt, min(attempt + cfg.wave_size, cfg.attempts + 1))
        if len(wave) == 1:
            rows.append(_attempt(run_id, spec, prompt, trial, attempt, identity))
        else:
            futures = [_submit_attempt(run_id, spec, prompt, trial, a, identity) for a in wave]
            rows += [f.result() for f in futures]
        attempt = wave.stop
        if any(row["status"] == SKIPPED_BUDGET for row in rows):
            rows += [attempt_row(identity=identity, attempt=a, skipped=True) for a in range(attempt, cfg.attempts + 1)]
            break
        if any(row.get("val_acc") == 1.0 for row in rows):
            break
    return select(rows, cfg.attempts, cell_label(spec, trial))


@task(name="select", task_run_name="select {label}", cache_policy=NO_CACHE)
def select(rows: list[dict], attempts_planned: int, label: str) -> list[dict]:
    """ERM: the attempt with the best validation accuracy; test accuracy plays no part."""
    return finish_trial(rows, attempts_planned)


@task(name="attempt", task_run_name="attempt {label}", cache_policy=NO_CACHE)
def attempt_task(run_id: str, spec: DatasetSpec, prompt: str, trial: int, attempt: int, identity: dict, label: str) -> dict:
    return _attempt(run_id, spec, prompt, trial, attempt, identity)


def _submit_attempt(run_id: str, spec: DatasetSpec, prompt: str, trial: int, attempt: int, identity: dict):
    return attempt_task.submit(run_id, spec, prompt, trial, attempt, identity, cell_label(spec, trial, attempt))
