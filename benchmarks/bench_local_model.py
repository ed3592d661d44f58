"""The real local model (llama.cpp + Qwen2.5-Coder-0.5B, one thread) on the paper's prompt: per answer, the
seconds, prompt and completion tokens, finish reason and whether our extractor finds a program, for the
default prompt and with structured output (a JSON schema {code: string}).

Calls go through the product's own ChatProposer with each attempt's own seed, as a grid would make them.
The machine's load average is printed before and after (the figures are only comparable at equal load).

    .venv/bin/python benchmarks/bench_local_model.py [--answers 6] [--train-size 20] [--length 20]
        [--max-output-tokens 300] [--target fn_a] [--modes structured,default]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from llm_erm.config import GridConfig
from llm_erm.datasets import build_dataset
from llm_erm.engine import attempt_seed
from llm_erm.local_model import LocalServer, ServerSettings
from llm_erm.proposers import ProposeRequest, make_proposer
from llm_erm.proposers.config import ProposerConfig
from llm_erm.proposers.prompt import build_prompt
from llm_erm.results.journal import sha256_text
from llm_erm.verify.extract import extract_code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=6, help="answers per mode")
    parser.add_argument("--train-size", type=int, default=20)
    parser.add_argument("--length", type=int, default=20)
    parser.add_argument("--target", default="fn_a")
    parser.add_argument("--max-output-tokens", type=int, default=300)
    parser.add_argument("--ctx-size", type=int, default=4096)
    parser.add_argument("--modes", default="default,structured", help="the order the modes run in (the first "
                        "answer of the first mode pays for processing the prompt; later ones find it cached)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-local-model-") as tmp:
        cfg = GridConfig(functions=[args.target], lengths=[args.length], train_size=args.train_size,
                         val_size=args.train_size, test_size=100, datasets_dir=tmp)
        prompt = build_prompt(build_dataset(cfg.dataset_specs()[0], Path(tmp)))
        print(f"load average before: {os.getloadavg()}")
        with LocalServer(ServerSettings(port=0, ctx_size=args.ctx_size, threads=1)) as server:
            for structured in [mode.strip() == "structured" for mode in args.modes.split(",")]:
                proposer = make_proposer(ProposerConfig(kind="openai-chat", base_url=server.base_url,
                                                        model=server.model, max_output_tokens=args.max_output_tokens,
                                                        structured_output=structured, call_timeout_s=900))
                proposer.check_prompt(prompt)
                rows = []
                for attempt in range(1, args.answers + 1):
                    seed = attempt_seed("bench", sha256_text(prompt), 1, attempt)
                    started = time.monotonic()
                    proposal = proposer.propose(ProposeRequest(prompt, trial=1, attempt=attempt, seed=seed))
                    seconds = time.monotonic() - started
                    parsed = extract_code(proposal.text) is not None
                    rows.append((seconds, proposal.usage.prompt_tokens, proposal.usage.cached_tokens,
                                 proposal.usage.completion_tokens, proposal.finish_reason, parsed))
                    print(f"  {'structured' if structured else 'default   '} a{attempt}: {seconds:6.1f} s, prompt "
                          f"{proposal.usage.prompt_tokens} (cached {proposal.usage.cached_tokens}), completion "
                          f"{proposal.usage.completion_tokens}, finish {proposal.finish_reason}, parsed {parsed}",
                          flush=True)
                secs = [r[0] for r in rows]
                print(f"{'structured' if structured else 'default'}: {len(rows)} answers, median "
                      f"{statistics.median(secs):.1f} s (min {min(secs):.1f}, max {max(secs):.1f}), mean completion "
                      f"{statistics.mean(r[3] for r in rows):.0f} tokens, prompt {rows[0][1]} tokens, parsed "
                      f"{sum(r[5] for r in rows)}/{len(rows)}, truncated {sum(r[4] == 'length' for r in rows)}",
                      flush=True)
        print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
