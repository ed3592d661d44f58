"""`sgd`: a transformer trained from scratch as a binary classifier (upstream's from-scratch baseline).

Tokens: one per character, ids = the symbol's index in the alphabet ('0'->0, '1'->1; digits by value),
then BOS, PAD and UNK get their own ids (upstream gave BOS id 2, which collides with the digit 2 on
the decimal targets; here it never collides). Each input is BOS + its characters, right-padded; the
classifier reads the hidden state of the last real token (causal attention, so it has seen every
character and no padding) through a linear head to one logit.

The backbone is a Qwen3 decoder (RMSNorm, RoPE, SwiGLU, grouped-query attention) built from a config
written here, never fetched: `size: tiny` (default; 2 layers, d=64, 4 heads, 2 KV heads, ff 256:
~124 k parameters, CPU-friendly) or the paper's shapes `qwen3-0.6b` and `qwen3-1.7b` (~0.44 B and
~1.41 B parameters with a 3-token vocabulary), which want a GPU: with `device: auto` they refuse
to start on a machine without one (≈71 s per step on one CPU core, measured).
Hyperparameters default per size: tiny uses lr 1e-3 -> 1e-5 (a small model needs a larger step);
the paper sizes use upstream's sweep values, lr 1e-5 -> 1e-6, bf16 autocast, gradient checkpointing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llm_erm.errors import UsageError
from llm_erm.methods.base import (
    LabelledData,
    LearnerResult,
    Setting,
    choice,
    non_negative_float,
    optional_positive_int,
    positive_float,
    positive_int,
)
from llm_erm.methods.features import symbols_for

# Qwen3 shapes (published configs of Qwen/Qwen3-0.6B and Qwen/Qwen3-1.7B; tiny is ours).
PRESETS: dict[str, dict[str, int]] = {
    "tiny": {"layers": 2, "d_model": 64, "heads": 4, "kv_heads": 2, "ff": 256},
    "qwen3-0.6b": {"layers": 28, "d_model": 1024, "heads": 16, "kv_heads": 8, "ff": 3072, "head_dim": 128},
    "qwen3-1.7b": {"layers": 28, "d_model": 2048, "heads": 16, "kv_heads": 8, "ff": 6144, "head_dim": 128},
}
PAPER_SIZES = ("qwen3-0.6b", "qwen3-1.7b")
SHAPE_KEYS = ("layers", "d_model", "heads", "kv_heads", "ff")
# Per-size defaults for the keys left as None in the schema.
SIZE_DEFAULTS: dict[str, dict[str, Any]] = {
    "tiny": {"lr": 1e-3, "eta_min": 1e-5, "checkpointing": False},
    "qwen3-0.6b": {"lr": 1e-5, "eta_min": 1e-6, "checkpointing": True},
    "qwen3-1.7b": {"lr": 1e-5, "eta_min": 1e-6, "checkpointing": True},
}


def _device(value: Any) -> str:
    if not isinstance(value, str) or not (value in ("auto", "cpu", "cuda") or
                                          (value.startswith("cuda:") and value[5:].isdigit())):
        raise ValueError("must be 'auto', 'cpu', 'cuda' or 'cuda:N'")
    return value


def _optional(check: Any) -> Any:
    def inner(value: Any) -> Any:
        return None if value is None else check(value)

    return inner


def _optional_bool(value: Any) -> bool | None:
    from llm_erm.methods.base import boolean

    return None if value is None else boolean(value)


# Settings both torch learners take (the training recipe).
TRAINING: dict[str, Setting] = {
    "epochs": Setting(200, positive_int, "upstream's sweep: 200"),
    "batch_size": Setting(20, positive_int, "upstream's sweep: 20"),
    "lr": Setting(None, _optional(positive_float), "null = the size's default"),
    "eta_min": Setting(None, _optional(non_negative_float), "cosine floor; null = the size's default"),
    "weight_decay": Setting(1e-5, non_negative_float, "AdamW"),
    "grad_clip": Setting(1.0, non_negative_float, "max gradient norm; 0 = off"),
    "eval_points": Setting(5, positive_int, "epochs at which train and test are evaluated (first and last included)"),
    "eval_batch_size": Setting(100, positive_int, "small batches are fastest on one CPU thread"),
    "threads": Setting(1, positive_int, "torch CPU threads (1 is stable on a shared machine)"),
    "device": Setting("auto", _device, "auto = a GPU when torch sees one, else the CPU"),
    "precision": Setting("auto", choice("auto", "fp32", "bf16"), "auto = bf16 autocast on a GPU, fp32 on the CPU"),
    "checkpointing": Setting(None, _optional_bool, "gradient checkpointing; null = the size's default"),
}

SCHEMA: dict[str, Setting] = {
    "size": Setting("tiny", choice(*PRESETS), "tiny (CPU) or a paper shape (GPU)"),
    "layers": Setting(None, optional_positive_int, "tiny only; null = 2"),
    "d_model": Setting(None, optional_positive_int, "tiny only; null = 64"),
    "heads": Setting(None, optional_positive_int, "tiny only; null = 4"),
    "kv_heads": Setting(None, optional_positive_int, "tiny only; null = 2"),
    "ff": Setting(None, optional_positive_int, "tiny only; SwiGLU width; null = 256"),
    **TRAINING,
}


def finalize(settings: dict[str, Any]) -> dict[str, Any]:
    """Fill the per-size defaults and check what depends on several keys or on the machine."""
    size = settings["size"]
    out = dict(settings)
    for key in SHAPE_KEYS:
        if size != "tiny" and out[key] is not None:
            raise UsageError(f"sgd: setting {key} is for size 'tiny' only; size {size!r} has a fixed shape")
        if out[key] is None:
            out[key] = PRESETS[size][key]
    for key, value in SIZE_DEFAULTS[size].items():
        if out[key] is None:
            out[key] = value
    if out["d_model"] % out["heads"]:
        raise UsageError(f"sgd: d_model ({out['d_model']}) must be divisible by heads ({out['heads']})")
    if out["heads"] % out["kv_heads"]:
        raise UsageError(f"sgd: heads ({out['heads']}) must be divisible by kv_heads ({out['kv_heads']})")
    check_device(out, "sgd", size in PAPER_SIZES, f"size {size!r}")
    return out


def check_device(settings: dict[str, Any], method: str, big: bool, what: str) -> None:
    """A paper-size model on the CPU only when asked for by name (device: cpu)."""
    from llm_erm.methods.torch_train import resolve_device

    device = resolve_device(settings["device"])
    if big and device.type == "cpu" and settings["device"] == "auto":
        raise UsageError(
            f"{method}: {what} needs a GPU and torch sees none (about 71 s per step, 40 h per run, on one "
            "CPU core); use size 'tiny', run where a GPU is visible, or set device 'cpu' to force it"
        )


def backbone_config(settings: dict[str, Any], vocab_size: int, positions: int, pad_id: int, bos_id: int) -> Any:
    from transformers import Qwen3Config

    preset = PRESETS[settings["size"]]
    return Qwen3Config(
        vocab_size=vocab_size,
        hidden_size=settings["d_model"],
        intermediate_size=settings["ff"],
        num_hidden_layers=settings["layers"],
        num_attention_heads=settings["heads"],
        num_key_value_heads=settings["kv_heads"],
        head_dim=preset.get("head_dim", settings["d_model"] // settings["heads"]),
        max_position_embeddings=positions,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
        tie_word_embeddings=False,
        use_cache=False,
        pad_token_id=pad_id,
        bos_token_id=bos_id,
        eos_token_id=None,
        attn_implementation="sdpa",
    )


def build_model(settings: dict[str, Any], vocab_size: int, positions: int, pad_id: int, bos_id: int) -> Any:
    """The classifier (Qwen3 backbone + linear head with bias, as upstream's from-scratch Qwen3)."""
    from transformers import Qwen3Model

    from llm_erm.methods.torch_train import LastTokenClassifier

    config = backbone_config(settings, vocab_size, positions, pad_id, bos_id)
    return LastTokenClassifier(Qwen3Model(config), config.hidden_size, bias=True)


def parameter_count(size: str = "qwen3-1.7b", vocab_size: int = 3, positions: int = 102) -> int:
    """Parameters of an sgd model of this size, built on torch's meta device (no memory, no weights)."""
    import torch

    from llm_erm.methods.base import resolve_schema

    settings = {**resolve_schema("sgd", SCHEMA, {"size": size}), "device": "cpu"}
    settings = finalize(settings)
    with torch.device("meta"):
        model = build_model(settings, vocab_size, positions, pad_id=vocab_size - 1, bos_id=vocab_size - 2)
    return sum(p.numel() for p in model.parameters())


class Vocabulary:
    """Symbol ids, then BOS, PAD, UNK."""

    def __init__(self, symbols: str) -> None:
        self.symbols = symbols
        self.index = {c: i for i, c in enumerate(symbols)}
        self.bos, self.pad, self.unk = len(symbols), len(symbols) + 1, len(symbols) + 2
        self.size = len(symbols) + 3

    def encode(self, inputs: Sequence[str], labels: Sequence[int], width: int) -> Any:
        import torch

        from llm_erm.methods.torch_train import Encoded

        n = len(inputs)
        ids = torch.full((n, width + 1), self.pad, dtype=torch.int64)
        ids[:, 0] = self.bos
        last = torch.zeros(n, dtype=torch.int64)
        same = all(len(x) == width for x in inputs) and set(self.symbols) <= set(map(chr, range(256)))
        if same and n:
            import numpy as np

            from llm_erm.methods.features import encode_symbols

            codes = torch.from_numpy(encode_symbols(inputs, self.symbols, width).astype(np.int64))
            codes[codes < 0] = self.unk
            ids[:, 1:] = codes
            last[:] = width
        else:
            for row, x in enumerate(inputs):
                ids[row, 1:len(x) + 1] = torch.tensor([self.index.get(c, self.unk) for c in x], dtype=torch.int64)
                last[row] = len(x)
        return Encoded(ids, last, torch.tensor(list(labels), dtype=torch.float32))


def _strings(method: str, data: LabelledData, split: str) -> list[str]:
    if not all(isinstance(x, str) for x in data.inputs):
        raise UsageError(
            f"{method} trains on character strings, but the {split} inputs are tabular rows (dicts); "
            "use a classical learner (xgboost, logreg, ...) for tabular targets"
        )
    return list(data.inputs)


def run_sgd(train: LabelledData, test: LabelledData, *, alphabet: str, length: int, seed: int,
            settings: dict[str, Any]) -> LearnerResult:
    import torch
    import transformers

    from llm_erm.methods.torch_train import (
        count_parameters,
        describe_device,
        enable_checkpointing,
        resolve_device,
        torch_threads,
    )
    from llm_erm.methods.torch_train import train as train_loop

    train_x, test_x = _strings("sgd", train, "train"), _strings("sgd", test, "test")
    if not train_x:
        raise UsageError("sgd: no training inputs")
    vocab = Vocabulary(symbols_for(alphabet, train_x))
    width = max(length, max(map(len, train_x)), max(map(len, test_x), default=0))
    device = resolve_device(settings["device"])
    precision = settings["precision"] if settings["precision"] != "auto" else ("bf16" if device.type == "cuda" else "fp32")
    with torch_threads(settings["threads"]):
        torch.manual_seed(seed)
        model = build_model(settings, vocab.size, positions=width + 2, pad_id=vocab.pad, bos_id=vocab.bos)
        if settings["checkpointing"]:
            enable_checkpointing(model.backbone)
        model.to(device)
        n_params, n_trainable = count_parameters(model)
        outcome = train_loop(
            model, vocab.encode(train_x, train.labels, width).to(device),
            vocab.encode(test_x, test.labels, width).to(device),
            settings=settings, device=device, precision=precision, seed=seed,
        )
    return LearnerResult(
        method="sgd", train_acc=outcome.train_acc, test_acc=outcome.test_acc,
        train_seconds=outcome.train_seconds, predict_seconds=outcome.predict_seconds,
        eval_seconds=outcome.eval_seconds, settings=dict(settings), device=describe_device(device),
        n_train=len(train), n_test=len(test), n_params=n_params, n_trainable=n_trainable,
        curve=outcome.curve, test_predictions=outcome.test_predictions,
        info={
            "steps": outcome.steps, "vocab": vocab.symbols, "vocab_size": vocab.size, "sequence_length": width + 1,
            "precision": precision, "architecture": "Qwen3Model + Linear(d, 1) on the last token",
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        },
    )
