"""No code runs from a checkpoint a user hands us: a crafted pickle is refused by every checkpoint reader."""

from __future__ import annotations

import os

import pytest
import torch
from conftest import FAST, compose_config

from modlab.errors import ModlabError
from modlab.evaluation.score_checkpoint import run as evaluate
from modlab.training import assemble, checkpoints
from modlab.training.train import run as train


class WritesAFile:
    """Unpickling this runs os.system: what a malicious checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"echo pwned > {self.marker}",))


@pytest.fixture
def crafted(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"backbone": WritesAFile(marker), "labels": ["toxic"]}}, path)
    return path, marker


def refused(call, marker):
    with pytest.raises(ModlabError, match="not loaded .loading it could run code.") as err:
        call()
    assert "\n" not in str(err.value)
    assert not marker.exists(), "the pickle's code ran"


def test_every_checkpoint_reader_refuses_a_crafted_pickle(crafted, tmp_path):
    path, marker = crafted
    refused(lambda: checkpoints.read(path), marker)
    refused(lambda: checkpoints.hparams(path), marker)
    refused(lambda: assemble.load_classifier(path), marker)
    refused(lambda: train(compose_config("train", [*FAST, f"ckpt_path={path}"], tmp_path / "resume")), marker)
    refused(lambda: evaluate(compose_config("eval", [f"ckpt_path={path}", "dataset=synthetic"], tmp_path / "eval")),
            marker)


@pytest.mark.parametrize("content, words", [
    (b"", "is empty"),
    (b"just some text\n", "not a PyTorch checkpoint"),
    (os.urandom(4096), "not a PyTorch checkpoint"),
])
def test_files_that_are_not_checkpoints_are_one_line(tmp_path, content, words):
    path = tmp_path / "bad.ckpt"
    path.write_bytes(content)
    with pytest.raises(ModlabError, match=words) as err:
        checkpoints.hparams(path)
    assert "\n" not in str(err.value)


def test_a_truncated_checkpoint_is_one_line(tmp_path):
    path = tmp_path / "whole.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1000)}, "hyper_parameters": {}}, path)
    data = path.read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModlabError, match="not a PyTorch checkpoint|cannot be read") as err:
        checkpoints.read(tmp_path / "cut.ckpt")
    assert "\n" not in str(err.value)


def test_a_checkpoint_without_modlab_hyperparameters_is_one_line(tmp_path):
    path = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ModlabError, match="not a modlab checkpoint"):
        checkpoints.hparams(path)


def test_a_backbone_directory_with_a_crafted_pickle_is_refused(tmp_path):
    """backbone.name=<dir> is user-supplied too: a pickled pytorch_model.bin is read tensors-only, in one line."""
    import shutil

    from modlab.models import backbones

    directory = tmp_path / "model"
    shutil.copytree(backbones.build_tiny("bert"), directory)
    (directory / "model.safetensors").unlink()
    marker = tmp_path / "pwned"
    torch.save({"embeddings.word_embeddings.weight": WritesAFile(marker)}, directory / "pytorch_model.bin")
    with pytest.raises(ModlabError, match="was not loaded .loading it could run code.") as err:
        backbones.load_encoder(str(directory))
    assert "\n" not in str(err.value) and "pytorch_model.bin" in str(err.value)
    assert not marker.exists(), "the pickle's code ran"


def test_a_backbone_directory_that_needs_its_own_code_is_refused_without_a_prompt(tmp_path):
    """config.json mapping to the directory's own module (auto_map, no model_type): transformers' default would
    ask on the terminal whether to run it; modlab refuses in one line and the module is never imported."""
    import json
    import shutil

    from modlab.models import backbones

    directory = tmp_path / "model"
    shutil.copytree(backbones.build_tiny("bert"), directory)
    marker = tmp_path / "pwned"
    (directory / "custom.py").write_text(f"open({str(marker)!r}, 'w').close()\n"
                                         "from transformers import BertConfig, BertModel\n"
                                         "class Config(BertConfig): pass\nclass Model(BertModel): pass\n")
    config = json.loads((directory / "config.json").read_text())
    config.pop("model_type")
    config["auto_map"] = {"AutoConfig": "custom.Config", "AutoModel": "custom.Model"}
    (directory / "config.json").write_text(json.dumps(config))
    for load in (backbones.load_encoder, backbones.max_positions, lambda p: backbones.load_encoder(p, dropout=0.2)):
        with pytest.raises(ModlabError, match="running its own Python code .auto_map in config.json.") as err:
            load(str(directory))
        assert "\n" not in str(err.value) and str(directory) in str(err.value)
    assert not marker.exists(), "the directory's code ran"
