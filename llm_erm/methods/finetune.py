"""`finetune`: a pretrained causal LM from a local directory, its top blocks and a new head trained.

As upstream: every weight frozen except the top `layers_to_train` decoder blocks (default 2) and a
new `Linear(hidden, 1, bias=False)` head; BCE on that one logit; the loop of torch_train.py.
Loading is local only: `from_pretrained(model_path, local_files_only=True)` for the config, the
backbone (AutoModel: the decoder without its LM head) and the tokenizer; a hub id is refused.

Inputs become text as upstream: characters separated by spaces ("0 1 1 0 ...", `text_format:
spaced`) or as they are (`plain`). Upstream truncated the tokens to L+2, which cut the spaced text
to about its first half (notes/baselines-icl-sgd.md 2.2); here nothing is truncated: batches are
right-padded and the head reads the last real token (the tokenizer's own BOS/EOS, if it adds them,
stay). The token count per input is recorded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llm_erm.errors import UsageError
from llm_erm.methods.base import LabelledData, LearnerResult, Setting, choice, non_negative_int, optional_text
from llm_erm.methods.sgd import TRAINING, _strings, check_device

SCHEMA: dict[str, Setting] = {
    "model_path": Setting(None, optional_text, "a local directory holding config.json, the weights and the tokenizer"),
    "layers_to_train": Setting(2, non_negative_int, "top decoder blocks trained (upstream: 2); 0 = the head only"),
    "text_format": Setting("spaced", choice("spaced", "plain"), "spaced: '0 1 1' as upstream; plain: '011'"),
    "dtype": Setting("auto", choice("auto", "float32", "bfloat16"), "weights; auto = bfloat16 on a GPU, float32 on the CPU"),
    **TRAINING,
}
FINETUNE_DEFAULTS = {"lr": 1e-5, "eta_min": 1e-6, "checkpointing": True}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model")
BLOCK_ATTRS = ("layers", "h", "blocks", "block")  # where decoders keep their blocks (Llama/Qwen, GPT-2/BLOOM, ...)


def finalize(settings: dict[str, Any]) -> dict[str, Any]:
    out = dict(settings)
    for key, value in FINETUNE_DEFAULTS.items():
        if out[key] is None:
            out[key] = value
    path = out["model_path"]
    if path is None:
        raise UsageError(
            "finetune: setting model_path is required: a local directory with the model's config.json, weights "
            "and tokenizer (finetune never downloads; e.g. `huggingface-cli download Qwen/Qwen3-1.7B --local-dir DIR` "
            "once, then model_path: DIR)"
        )
    directory = Path(path).expanduser()
    if not (directory / "config.json").is_file():
        why = "does not exist" if not directory.exists() else "has no config.json"
        raise UsageError(
            f"finetune: model_path {path!r} {why}; it must be a local model directory (config.json, weights, "
            "tokenizer files); hub ids are not fetched"
        )
    if not any((directory / name).is_file() for name in TOKENIZER_FILES):
        raise UsageError(
            f"finetune: model_path {path!r} has no tokenizer (none of {', '.join(TOKENIZER_FILES)}); "
            "save the tokenizer beside the model (tokenizer.save_pretrained(DIR))"
        )
    out["model_path"] = str(directory.resolve())
    # A small local model is fine on the CPU; only a big one is refused there under device auto.
    size = sum(f.stat().st_size for f in directory.glob("*.safetensors")) + sum(
        f.stat().st_size for f in directory.glob("*.bin"))
    check_device(out, "finetune", size > 2 * 1024**3, f"a {size / 1024**3:.1f} GB model")
    return out


def _blocks(backbone: Any) -> Any:
    import torch

    for owner in (backbone, getattr(backbone, "decoder", None)):
        for attr in BLOCK_ATTRS:
            blocks = getattr(owner, attr, None) if owner is not None else None
            if isinstance(blocks, torch.nn.ModuleList):
                return blocks
    return None


def load(settings: dict[str, Any], device: Any) -> tuple[Any, Any, int]:
    """(classifier with frozen bottom, tokenizer, number of blocks) from settings['model_path']."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from llm_erm.methods.torch_train import LastTokenClassifier

    path = settings["model_path"]
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}.get(
        settings["dtype"], torch.bfloat16 if device.type == "cuda" else torch.float32)
    try:
        backbone = AutoModel.from_pretrained(path, local_files_only=True, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"finetune: cannot load the model in {path!r}: {first}") from None
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token_id is None:
            raise UsageError(f"finetune: the tokenizer in {path!r} has neither a pad nor an eos token to pad with")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    if not len(tokenizer(" ".join("01"))["input_ids"]):
        raise UsageError(f"finetune: the tokenizer in {path!r} turns '0 1' into no tokens; is it the model's tokenizer?")
    for p in backbone.parameters():
        p.requires_grad = False
    blocks = _blocks(backbone)
    n_train = settings["layers_to_train"]
    if n_train:
        if blocks is None:
            raise UsageError(
                f"finetune: cannot find the decoder blocks of {type(backbone).__name__} to unfreeze; "
                "use layers_to_train 0 (head only)"
            )
        if n_train > len(blocks):
            raise UsageError(f"finetune: layers_to_train is {n_train} but the model has {len(blocks)} blocks")
        for block in list(blocks)[-n_train:]:
            for p in block.parameters():
                p.requires_grad = True
    hidden = backbone.config.get_text_config().hidden_size
    model = LastTokenClassifier(backbone, hidden, bias=False, dtype=dtype)
    return model, tokenizer, 0 if blocks is None else len(blocks)


def encode_text(tokenizer: Any, inputs: list[str], labels: Any, text_format: str) -> Any:
    import torch

    from llm_erm.methods.torch_train import Encoded

    texts = [" ".join(x) if text_format == "spaced" else x for x in inputs]
    enc = tokenizer(texts, padding=True, truncation=False, return_tensors="pt")
    attention = enc["attention_mask"].to(torch.int64)
    last = attention.sum(dim=1) - 1
    if (last < 0).any():
        raise UsageError("finetune: an input tokenised to nothing")
    return Encoded(enc["input_ids"].to(torch.int64), last, torch.tensor(list(labels), dtype=torch.float32), attention)


def run_finetune(train: LabelledData, test: LabelledData, *, alphabet: str, length: int, seed: int,
                 settings: dict[str, Any]) -> LearnerResult:
    import torch
    import transformers

    from llm_erm.methods.torch_train import (
        count_parameters,
        describe_device,
        enable_checkpointing,
        quiet_transformers,
        resolve_device,
        torch_threads,
    )
    from llm_erm.methods.torch_train import train as train_loop

    train_x, test_x = _strings("finetune", train, "train"), _strings("finetune", test, "test")
    if not train_x:
        raise UsageError("finetune: no training inputs")
    device = resolve_device(settings["device"])
    precision = settings["precision"] if settings["precision"] != "auto" else ("bf16" if device.type == "cuda" else "fp32")
    with torch_threads(settings["threads"]):
        torch.manual_seed(seed)  # the new head's initialisation
        with quiet_transformers():
            model, tokenizer, n_blocks = load(settings, device)
        if settings["checkpointing"] and settings["layers_to_train"]:
            enable_checkpointing(model.backbone)
        model.to(device)
        n_params, n_trainable = count_parameters(model)
        train_enc = encode_text(tokenizer, train_x, train.labels, settings["text_format"])
        test_enc = encode_text(tokenizer, test_x, test.labels, settings["text_format"])
        tokens = (train_enc.last + 1).float()
        outcome = train_loop(
            model, train_enc.to(device), test_enc.to(device),
            settings=settings, device=device, precision=precision, seed=seed,
        )
    return LearnerResult(
        method="finetune", train_acc=outcome.train_acc, test_acc=outcome.test_acc,
        train_seconds=outcome.train_seconds, predict_seconds=outcome.predict_seconds,
        eval_seconds=outcome.eval_seconds, settings=dict(settings), device=describe_device(device),
        n_train=len(train), n_test=len(test), n_params=n_params, n_trainable=n_trainable,
        curve=outcome.curve, test_predictions=outcome.test_predictions,
        info={
            "steps": outcome.steps, "blocks": n_blocks, "blocks_trained": settings["layers_to_train"],
            "model_type": model.backbone.config.model_type, "precision": precision,
            "tokens_per_input": {"mean": float(tokens.mean()), "max": int(tokens.max())},
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        },
    )
