"""finetune loads a pretrained causal LM from a local directory: here a tiny Qwen3 and a character-level
tokenizer that the test builds and saves itself (no hub, no network), exactly as a downloaded model sits on disk."""

from __future__ import annotations

import pytest
import torch
from methods_helpers import FIRST_BIT, cell
from safetensors.torch import load_file
from tokenizers import Regex, Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

from llm_erm.errors import UsageError
from llm_erm.methods import check_learner, run_learner
from llm_erm.methods.finetune import load

LAYERS = 3


def save_tiny_model(directory):
    """A 3-block Qwen3ForCausalLM with random weights and a WordLevel tokenizer with one token per
    character (spaces dropped), saved with save_pretrained: what `huggingface-cli download` leaves."""
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3}
    for c in "0123456789uv":
        vocab[c] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex("."), "isolated")])
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                            unk_token="<unk>").save_pretrained(directory)
    torch.manual_seed(0)
    config = Qwen3Config(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=LAYERS,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=256,
                         pad_token_id=0, bos_token_id=1, eos_token_id=2)
    Qwen3ForCausalLM(config).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny-qwen3"))


@pytest.fixture(scope="module")
def datasets_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("finetune-datasets")


def test_loads_saved_weights_and_freezes_all_but_the_top_blocks(model_dir):
    settings = check_learner("finetune", {"model_path": str(model_dir), "layers_to_train": 2})
    model, tokenizer, blocks = load(settings, torch.device("cpu"))
    assert blocks == LAYERS
    saved = load_file(str(model_dir / "model.safetensors"))
    state = model.backbone.state_dict()
    for name, tensor in state.items():  # every backbone weight is the saved one (the LM head is dropped)
        assert torch.equal(tensor, saved[f"model.{name}"]), name
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in model.named_parameters()
                         if n.startswith(("backbone.layers.1.", "backbone.layers.2.")) or n == "head.weight"}
    assert model.head.bias is None  # upstream's head: Linear(hidden, 1, bias=False)
    assert tokenizer(" ".join("0110"))["input_ids"] == [4, 5, 5, 4]


def test_finetunes_top_blocks_and_learns_a_planted_rule(model_dir, datasets_dir):
    train, test, alphabet = cell(datasets_dir, FIRST_BIT, 20, test_size=1000)
    result = run_learner("finetune", train, test, alphabet=alphabet, length=20, seed=1,
                         settings={"model_path": str(model_dir), "epochs": 5, "lr": 1e-3, "eval_points": 2})
    assert result.test_acc >= 0.95 and result.train_acc >= 0.95
    block = sum(p.numel() for p in Qwen3ForCausalLM.from_pretrained(model_dir).model.layers[0].parameters())
    assert result.n_trainable == 2 * block + 32  # two blocks and the head
    assert result.n_params > result.n_trainable
    assert result.info["blocks"] == LAYERS and result.info["blocks_trained"] == 2
    assert result.info["tokens_per_input"] == {"mean": 20.0, "max": 20}  # nothing truncated
    assert [e["epoch"] for e in result.curve if e["test_acc"] is not None] == [1, 5]
    assert result.settings["model_path"] == str(model_dir.resolve())


def test_head_only_and_bad_directories(model_dir, datasets_dir, tmp_path):
    train, test, alphabet = cell(datasets_dir, FIRST_BIT, 20, test_size=1000)
    result = run_learner("finetune", train, test, alphabet=alphabet, length=20, seed=1,
                         settings={"model_path": str(model_dir), "layers_to_train": 0, "epochs": 1,
                                   "eval_points": 1, "text_format": "plain"})
    assert result.n_trainable == 32
    with pytest.raises(UsageError, match="layers_to_train is 4 but the model has 3 blocks"):
        run_learner("finetune", train, test, alphabet=alphabet, length=20, seed=1,
                    settings={"model_path": str(model_dir), "layers_to_train": 4})
    (tmp_path / "config.json").write_text((model_dir / "config.json").read_text())  # config only
    with pytest.raises(UsageError, match="has no tokenizer"):
        check_learner("finetune", {"model_path": str(tmp_path)})
    (tmp_path / "tokenizer.json").write_text((model_dir / "tokenizer.json").read_text())  # and no weights
    with pytest.raises(UsageError, match="finetune: cannot load the model in .*no file named model.safetensors"):
        run_learner("finetune", train, test, alphabet=alphabet, length=20, seed=1,
                    settings={"model_path": str(tmp_path), "epochs": 1})
