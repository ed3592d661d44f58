"""The training loop sgd and finetune share: upstream's recipe for a transformer as a binary classifier.

BCE-with-logits on one logit read at the last real token, AdamW, a cosine schedule over all steps
(CosineAnnealingLR down to eta_min, stepped per batch), gradient-norm clipping, a fixed batch size,
shuffled every epoch by a generator seeded from the run's seed; bf16 autocast on a GPU.

The curve has one entry per epoch: the mean loss and accuracy over that epoch's batches as they were
trained (free), and, at a bounded number of epochs (`eval_points`, always including the first and
the last), the loss and accuracy of the whole training data and of the test split evaluated with the
model as it stands after that epoch. So a 200-epoch run costs a handful of test evaluations, not 200.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from llm_erm.errors import UsageError


@dataclass
class Encoded:
    """Token ids of one split, right-padded, with the index of each row's last real token."""

    ids: torch.Tensor  # (n, T) int64
    last: torch.Tensor  # (n,) int64
    labels: torch.Tensor  # (n,) float32
    attention: torch.Tensor | None = None  # (n, T) int64, 1 = real token; None when not needed

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def to(self, device: torch.device) -> Encoded:
        return Encoded(
            self.ids.to(device), self.last.to(device), self.labels.to(device),
            None if self.attention is None else self.attention.to(device),
        )

    def rows(self, index: torch.Tensor | slice) -> Encoded:
        return Encoded(
            self.ids[index], self.last[index], self.labels[index],
            None if self.attention is None else self.attention[index],
        )


class LastTokenClassifier(nn.Module):
    """A backbone returning hidden states, and a linear head on the last real token's state."""

    def __init__(self, backbone: nn.Module, hidden_size: int, bias: bool, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(hidden_size, 1, bias=bias, dtype=dtype)

    def forward(self, batch: Encoded) -> torch.Tensor:
        hidden = self.backbone(input_ids=batch.ids, attention_mask=batch.attention).last_hidden_state
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        return self.head(hidden[rows, batch.last]).squeeze(-1).float()


def resolve_device(setting: str) -> torch.device:
    """"auto" -> the first GPU when torch sees one, else the CPU. UsageError for a GPU that is not there."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(
                f"device {setting!r} asked for, but torch sees no GPU (torch {torch.__version__}, "
                f"CUDA build: {torch.version.cuda or 'no'}); use device 'auto' or 'cpu'"
            )
        device = torch.device(setting)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"device {setting!r}: only {torch.cuda.device_count()} GPU(s) visible")
        return device
    if setting == "cpu":
        return torch.device("cpu")
    raise UsageError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {setting!r}")


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return "cpu"


def eval_epochs(epochs: int, points: int) -> list[int]:
    """`points` epochs spread evenly over 1..epochs, always the first and the last."""
    if points <= 1 or epochs == 1:
        return [epochs]
    picks = {1, epochs} | {round(1 + i * (epochs - 1) / (points - 1)) for i in range(points)}
    return sorted(picks)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with n intra-op threads (the note: 1 is stable on a shared 2-core box, 2 collapse), then restore."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def evaluate(model: LastTokenClassifier, data: Encoded, batch_size: int, device: torch.device,
             precision: str) -> tuple[float, float, torch.Tensor]:
    """(mean BCE loss, accuracy, 0/1 predictions) of the whole split."""
    was_training = model.training
    model.eval()
    loss_sum, predictions = 0.0, []
    for start in range(0, len(data), batch_size):
        batch = data.rows(slice(start, start + batch_size))
        with _autocast(device, precision):
            logits = model(batch)
        loss_sum += nn.functional.binary_cross_entropy_with_logits(logits, batch.labels, reduction="sum").item()
        predictions.append((logits >= 0).to(torch.int64))
    model.train(was_training)
    if not len(data):
        return float("nan"), float("nan"), torch.zeros(0, dtype=torch.int64)
    pred = torch.cat(predictions)
    acc = int((pred == data.labels.to(torch.int64)).sum().item()) / len(data)
    return loss_sum / len(data), acc, pred.cpu()


@dataclass
class TrainOutcome:
    curve: list[dict[str, Any]]
    train_acc: float
    test_acc: float
    test_predictions: list[int]
    train_seconds: float
    eval_seconds: float
    predict_seconds: float
    steps: int


def train(model: LastTokenClassifier, train_data: Encoded, test_data: Encoded, *, settings: dict[str, Any],
          device: torch.device, precision: str, seed: int) -> TrainOutcome:
    """Train `model` (its parameters with requires_grad) on train_data; curve and final scores."""
    epochs, batch_size = settings["epochs"], settings["batch_size"]
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise UsageError("nothing to train: every parameter is frozen")
    fused = device.type == "cuda"  # upstream uses fused AdamW; the fused kernel is GPU-only here
    optimizer = torch.optim.AdamW(params, lr=settings["lr"], weight_decay=settings["weight_decay"], fused=fused)
    steps_per_epoch = -(-len(train_data) // batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=epochs * steps_per_epoch, eta_min=settings["eta_min"]
    )
    shuffle = torch.Generator().manual_seed(seed)
    checkpoints = set(eval_epochs(epochs, settings["eval_points"]))
    eval_batch = settings["eval_batch_size"]
    curve: list[dict[str, Any]] = []
    train_seconds = eval_seconds = predict_seconds = 0.0
    step = 0
    final: tuple[float, float, torch.Tensor] | None = None
    train_acc = float("nan")
    model.train()
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        order = torch.randperm(len(train_data), generator=shuffle).to(device)
        loss_sum, correct = 0.0, 0
        for start in range(0, len(train_data), batch_size):
            batch = train_data.rows(order[start:start + batch_size])
            with _autocast(device, precision):
                logits = model(batch)
            loss = nn.functional.binary_cross_entropy_with_logits(logits, batch.labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if settings["grad_clip"] > 0:
                nn.utils.clip_grad_norm_(params, settings["grad_clip"])
            optimizer.step()
            scheduler.step()
            step += 1
            n = len(batch)
            loss_sum += loss.item() * n
            correct += int(((logits.detach() >= 0) == (batch.labels >= 0.5)).sum().item())
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        train_seconds += time.perf_counter() - t0
        entry: dict[str, Any] = {
            "epoch": epoch, "step": step, "lr": scheduler.get_last_lr()[0],
            "batch_loss": loss_sum / len(train_data), "batch_acc": correct / len(train_data),
            "train_loss": None, "train_acc": None, "test_loss": None, "test_acc": None,
            "train_seconds": train_seconds,
        }
        if epoch in checkpoints:
            t1 = time.perf_counter()
            entry["train_loss"], train_acc, _ = evaluate(model, train_data, eval_batch, device, precision)
            entry["train_acc"] = train_acc
            t2 = time.perf_counter()
            test_loss, test_acc, test_pred = evaluate(model, test_data, eval_batch, device, precision)
            t3 = time.perf_counter()
            entry["test_loss"], entry["test_acc"] = test_loss, test_acc
            if epoch == epochs:  # the final model's test prediction is the result's prediction
                eval_seconds += t2 - t1
                predict_seconds = t3 - t2
                final = (test_loss, test_acc, test_pred)
            else:
                eval_seconds += t3 - t1
        curve.append(entry)
    assert final is not None
    return TrainOutcome(
        curve=curve, train_acc=train_acc, test_acc=final[1], test_predictions=[int(p) for p in final[2]],
        train_seconds=train_seconds, eval_seconds=eval_seconds, predict_seconds=predict_seconds, steps=step,
    )


def enable_checkpointing(backbone: nn.Module) -> None:
    """Recompute activations in the backward pass (upstream did, to fit 1-2 B models). Non-reentrant,
    so the top blocks still get gradients when the frozen bottom's outputs need none."""
    backbone.config.use_cache = False
    kwargs = {"use_reentrant": False}
    if hasattr(backbone, "activation_checkpointing_enable"):  # transformers >= 5 names it so
        backbone.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """No progress bars or load reports from transformers (the LM head a classifier drops is expected)."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(all, trainable) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable
