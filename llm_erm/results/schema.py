"""Column sets of the Parquet ledger under results/<run_id>/.

attempts/<method label>/<target>/L<length>/trial<t>.parquet
                                               one row per attempt of one finished trial (a trained
                                               baseline's or icl's trial is one row)
summary.parquet                                one row per cell (target, length)
manifest.json                                  config, versions, argv, sandbox mode, row counts

Key columns (run_id, method_label, target, length, trial, attempt) live inside the rows, so a file read on its
own still says what it is.
"""

import pyarrow as pa

# Statuses of an attempt: the verifier's, plus the two that end an attempt before verification.
VERIFY_STATUSES = (
    "ok", "too_large", "no_code", "syntax_error", "no_function", "runtime_errors", "timeout", "memory", "crashed",
)
PROPOSE_ERROR = "propose_error"  # the proposer failed permanently (or ran out of retries)
SKIPPED_BUDGET = "skipped_budget"  # never called: the run's budget was spent
# The answer arrived (and was paid for) but the journal could not store it: an error of that attempt,
# recorded here once and never bought again by a resume (unlike propose_error).
UNSTORABLE = "unstorable"
STATUSES = VERIFY_STATUSES + (PROPOSE_ERROR, SKIPPED_BUDGET, UNSTORABLE)

ATTEMPT_SCHEMA = pa.schema(
    [
        # identity
        ("run_id", pa.string()),
        ("method", pa.string()),  # erm | icl | sgd | xgboost ... (llm_erm.config.METHODS)
        ("method_label", pa.string()),  # the method's name in the grid: erm, erm-gpt-5-mini, sgd-n1000 ...
        ("target", pa.string()),  # fn_a ...
        ("target_name", pa.string()),  # parity_all ...
        ("length", pa.int32()),
        ("trial", pa.int32()),
        ("attempt", pa.int32()),  # 1-based
        # what was asked
        ("n_train", pa.int64()),  # examples the method learned from (erm: train split shown, val selects)
        ("dataset_id", pa.string()),
        ("dataset_path", pa.string()),
        ("protocol", pa.string()),  # tabular targets: clean | raw (how rows were rendered); null otherwise
        ("proposer", pa.string()),  # openai-responses | openai-chat | enumerate | replay
        ("model", pa.string()),  # requested model
        ("base_url", pa.string()),
        ("request_params", pa.string()),  # JSON of the request parameters that shape the answer
        ("tools", pa.string()),  # the model's tools enabled for the call (code_interpreter ...); null: none
        ("seed", pa.int64()),  # the attempt's own sampling seed (sent where the endpoint takes one)
        ("prompt_variant", pa.string()),
        ("prompt", pa.string()),
        ("prompt_sha256", pa.string()),
        # what came back
        ("response_model", pa.string()),
        ("text", pa.string()),
        ("propose_error", pa.string()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("reasoning_tokens", pa.int64()),
        ("cached_tokens", pa.int64()),
        ("tool_uses", pa.int32()),
        ("tool_results_chars", pa.int64()),
        ("cost_usd", pa.float64()),  # null: unpriced model, never 0 by default
        ("latency_s", pa.float64()),
        ("finish_reason", pa.string()),  # what the server said about how the answer ended (stop, length ...)
        ("truncated", pa.bool_()),  # the answer was cut off by an output or context limit
        ("response_id", pa.string()),  # the server's id of the response
        ("proposal_extra", pa.string()),  # JSON: anything else the proposer reported (enumerator counts ...)
        ("reused_answer", pa.bool_()),  # the answer came from the journal (paid for before a resume)
        ("method_extra", pa.string()),  # JSON: icl's prompts and parses, a trained baseline's curve and settings
        # verification
        ("code", pa.string()),
        ("sanitized", pa.bool_()),
        ("status", pa.string()),
        ("train_acc", pa.float64()),
        ("val_acc", pa.float64()),
        ("test_acc", pa.float64()),
        ("val_errors", pa.int32()),
        ("test_errors", pa.int32()),
        ("first_error", pa.string()),
        ("limit_split", pa.string()),  # val | train | test: the split in which a time or memory limit stopped it
        ("code_lines", pa.int32()),
        ("ast_nodes", pa.int32()),
        ("branches", pa.int32()),
        ("signature", pa.string()),  # hash of the validation predictions
        ("sandbox", pa.string()),  # bwrap | rlimit
        # selection within the trial
        ("selection_rule", pa.string()),  # the rule that chose `selected` (llm_erm.results.selection)
        ("selected", pa.bool_()),
        ("stopped_early", pa.bool_()),  # the trial stopped at this attempt (validation 1.0)
        ("created_at", pa.timestamp("us", tz="UTC")),
    ]
)
