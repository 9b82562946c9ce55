"""The training path composed the way users compose it: every family x head x loss, CLI, resume, DDP."""

import json
import logging
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import ROOT

from modlab.errors import ModlabError
from modlab.models import backbones
from modlab.models.module import ModerationClassifier
from modlab.training.assemble import Backbone, build_datamodule
from modlab.training.train import run

BACKBONES = ["minilm", "mpnet", "distilbert", "distilroberta"]


def train_py(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def datamodules(tmp_path_factory):
    return {}


@pytest.mark.parametrize("loss", ["bce", "weighted_bce", "focal"])
@pytest.mark.parametrize("head", ["cls", "mean", "attention"])
@pytest.mark.parametrize("backbone", BACKBONES)
def test_every_backbone_head_loss_takes_a_training_step(train_cfg, datamodules, backbone, head, loss):
    cfg = train_cfg(f"backbone={backbone}", f"head={head}", f"loss={loss}", "dataset.reader.size=64")
    if backbone not in datamodules:
        datamodules[backbone] = build_datamodule(cfg, Backbone.resolve(cfg.backbone), None)
    dm = datamodules[backbone]
    model = ModerationClassifier(cfg.backbone, cfg.head, cfg.loss, cfg.optim, dm.label_names)
    model.criterion.fit(dm.train_labels, dm.label_names)
    assert model.encoder.training, "transformers 5 loads in eval mode; the encoder must train with dropout on"
    batch = next(iter(dm.train_dataloader()))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = model.head.classifier.weight.detach().clone()
    loss_value = model.criterion(model(batch["input_ids"], batch["attention_mask"]), batch["labels"])
    loss_value.backward()
    optimizer.step()
    assert torch.isfinite(loss_value)
    assert not torch.equal(before, model.head.classifier.weight)
    assert all(p.grad is not None for p in model.encoder.embeddings.parameters() if p.requires_grad)


def test_dropout_is_active_in_training(train_cfg):
    cfg = train_cfg("backbone.dropout=0.5")
    model = ModerationClassifier(cfg.backbone, cfg.head, cfg.loss, cfg.optim, ["a", "b"])
    ids = torch.randint(5, 100, (2, 12))
    mask = torch.ones_like(ids)
    assert not torch.equal(model(ids, mask), model(ids, mask))
    model.eval()
    assert torch.equal(model(ids, mask), model(ids, mask))


def test_optimizer_groups_lrs_and_warmup(train_cfg):
    cfg = train_cfg("optim.lr=1e-4", "optim.head_lr=1e-2", "optim.warmup_steps=5", "optim.weight_decay=0.1")
    model = ModerationClassifier(cfg.backbone, cfg.head, cfg.loss, cfg.optim, ["a", "b"])
    model.trainer = type("T", (), {"estimated_stepping_batches": 20, "precision": "bf16-mixed"})()
    conf = model.configure_optimizers()
    optimizer, scheduler = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    no_decay = {id(p) for g in optimizer.param_groups if g["weight_decay"] == 0 for p in g["params"]}
    norm_and_bias = [p for n, p in model.named_parameters() if "bias" in n or "LayerNorm" in n or "norm" in n]
    assert norm_and_bias and all(id(p) in no_decay for p in norm_and_bias)
    head_ids = {id(p) for p in model.head.parameters()}
    for g in optimizer.param_groups:
        assert g["initial_lr"] == (1e-2 if id(g["params"][0]) in head_ids else 1e-4)
    lrs = []
    for _ in range(20):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == 0 and lrs[5] == pytest.approx(1e-4) and lrs[-1] < lrs[5]


@pytest.mark.parametrize(("precision", "fused"), [("32-true", True), ("bf16-mixed", True), ("16-mixed", False)])
def test_fused_auto_is_the_fused_adamw_except_under_fp16_loss_scaling(train_cfg, precision, fused):
    cfg = train_cfg()
    model = ModerationClassifier(cfg.backbone, cfg.head, cfg.loss, cfg.optim, ["a", "b"])
    model.trainer = type("T", (), {"estimated_stepping_batches": 20, "precision": precision})()
    assert cfg.optim.optimizer.fused == "auto"
    assert model.configure_optimizers()["optimizer"].defaults["fused"] is fused
    off = train_cfg("optim.optimizer.fused=false")
    model = ModerationClassifier(off.backbone, off.head, off.loss, off.optim, ["a", "b"])
    model.trainer = type("T", (), {"estimated_stepping_batches": 20, "precision": precision})()
    assert not model.configure_optimizers()["optimizer"].defaults["fused"]


def test_fused_auto_is_dropped_for_an_optimizer_without_a_fused_kernel(train_cfg):
    cfg = train_cfg("optim.optimizer._target_=torch.optim.RAdam")
    model = ModerationClassifier(cfg.backbone, cfg.head, cfg.loss, cfg.optim, ["a", "b"])
    model.trainer = type("T", (), {"estimated_stepping_batches": 20, "precision": "bf16-mixed"})()
    assert isinstance(model.configure_optimizers()["optimizer"], torch.optim.RAdam)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_layer_wise_lr_decay_scales_each_block(train_cfg, backbone):
    cfg = train_cfg(f"backbone={backbone}", "optim.lr=1e-4", "optim.head_lr=1e-2", "optim.layer_decay=0.5")
    model = ModerationClassifier(cfg.backbone, cfg.head, cfg.loss, cfg.optim, ["a", "b"])
    model.trainer = type("T", (), {"estimated_stepping_batches": 20, "precision": "32-true"})()
    optimizer = model.configure_optimizers()["optimizer"]
    lr_of = {id(p): g["initial_lr"] for g in optimizer.param_groups for p in g["params"]}  # before warmup
    layers = model.encoder.config.num_hidden_layers
    blocks = set()
    for name, p in model.encoder.named_parameters():
        index = backbones.layer_of(name)
        if index is not None:
            blocks.add(index)
            assert lr_of[id(p)] == pytest.approx(1e-4 * 0.5 ** (layers - 1 - index)), name
        elif "embeddings" in name:
            assert lr_of[id(p)] == pytest.approx(1e-4 * 0.5**layers), name
    assert blocks == set(range(layers))  # every block found by name, in every family
    assert all(lr_of[id(p)] == 1e-2 for p in model.head.parameters())
    assert len(lr_of) == sum(1 for p in model.parameters() if p.requires_grad)  # nothing left out


def test_reinit_top_layers_and_multi_sample_dropout_train(train_cfg):
    cfg = train_cfg("backbone.reinit_layers=1", "head=attention", "head.samples=4", "debug=fdr")
    plain = ModerationClassifier(train_cfg().backbone, cfg.head, cfg.loss, cfg.optim, ["a", "b"])
    model = ModerationClassifier(cfg.backbone, cfg.head, cfg.loss, cfg.optim, ["a", "b"])
    top = model.encoder.config.num_hidden_layers - 1
    before, after = dict(plain.encoder.named_parameters()), dict(model.encoder.named_parameters())
    for name, p in after.items():  # the same tiny weights below the top block, fresh ones in it
        changed = not torch.equal(p, before[name])
        assert changed == (backbones.layer_of(name) == top and p.ndim >= 2) or p.ndim < 2, name
    hidden, mask = torch.randn(3, 5, model.encoder.config.hidden_size), torch.ones(3, 5, dtype=torch.long)
    model.head.train()
    torch.manual_seed(0)
    averaged = model.head(hidden, mask)
    state = model.head.mlp(model.head.pool(hidden, mask.float()))
    torch.manual_seed(0)
    expected = torch.stack([model.head.classifier(model.head.dropout(state)) for _ in range(4)]).mean(dim=0)
    assert torch.allclose(averaged, expected, atol=1e-6)
    model.head.eval()
    assert torch.allclose(model.head(hidden, mask), model.head.classifier(state), atol=1e-6)
    run(cfg)  # and a run trains with both


@pytest.mark.parametrize("backbone", BACKBONES)
def test_frozen_bottom_layers_get_no_gradient_no_optimizer_state_and_stay_pretrained(train_cfg, backbone):
    cfg = train_cfg(f"backbone={backbone}", "backbone.freeze_layers=2", "optim.layer_decay=0.9", "debug=fdr")
    model = ModerationClassifier(cfg.backbone, cfg.head, cfg.loss, cfg.optim, ["a", "b"])
    frozen = {n for n, p in model.encoder.named_parameters() if not p.requires_grad}
    expected = {n for n, _ in model.encoder.named_parameters()
                if backbones.layer_of(n) == 0 or ("embeddings" in n and backbones.layer_of(n) is None)}
    assert frozen == expected and any("embeddings" in n for n in frozen) and any(".0." in n for n in frozen)
    model.trainer = type("T", (), {"estimated_stepping_batches": 20, "precision": "32-true"})()
    in_optimizer = {id(p) for g in model.configure_optimizers()["optimizer"].param_groups for p in g["params"]}
    assert in_optimizer == {id(p) for p in model.parameters() if p.requires_grad}
    before = {n: p.detach().clone() for n, p in model.encoder.named_parameters()}
    ids = torch.randint(5, 100, (4, 12))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.criterion(model(ids, torch.ones_like(ids)), torch.ones(4, 2)).backward()
    optimizer.step()
    after = dict(model.encoder.named_parameters())
    assert all(after[n].grad is None and torch.equal(before[n], after[n]) for n in frozen)  # no backward into them
    assert any(not torch.equal(before[n], p) for n, p in after.items() if backbones.layer_of(n) == 1)


def test_freezing_a_reinitialized_block_is_one_line(train_cfg):
    from test_bad_input_cli import one_line

    one_line(lambda: run(train_cfg("backbone.reinit_layers=2", "backbone.freeze_layers=2", "debug=fdr")),
             "backbone.freeze_layers=2", "less the 2 re-initialized ones")


def test_reinit_more_layers_than_the_model_has_is_one_line(train_cfg):
    from test_bad_input_cli import one_line

    one_line(lambda: run(train_cfg("backbone.reinit_layers=99", "debug=fdr")), "backbone.reinit_layers=99",
             "must be between 0 and the model's")


def test_focal_alpha_per_label_from_the_config_trains(train_cfg):
    cfg = train_cfg("loss=focal", "loss.alpha=0.25", "loss.alpha_per_label={threat: 0.75}", "debug=fdr")
    run(cfg)
    bad = train_cfg("loss=focal", "loss.alpha_per_label={treat: 0.75}", "debug=fdr")
    with pytest.raises(ModlabError, match="'treat', not labels of this data"):
        run(bad)


def test_tiny_model_learns_synthetic_data(train_cfg):
    cfg = train_cfg("dataset.reader.size=1500", "trainer.max_epochs=4", "optim.lr=3e-3", "optim.head_lr=3e-3",
                    "callbacks.early_stopping=null", "logger=none")
    run(cfg)
    metrics = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert metrics["test/auroc_macro"] >= 0.9, metrics["test/auroc_macro"]


def test_resume_from_checkpoint_continues_training(train_cfg, tmp_path):
    first = train_cfg("logger=none")
    run(first)
    last = Path(first.paths.output_dir) / "checkpoints" / "last.ckpt"
    first_state = torch.load(last, weights_only=True)
    assert first_state["epoch"] == 0
    resumed = train_cfg("logger=none", "trainer.max_epochs=2", f"ckpt_path={last}")
    run(resumed)
    state = torch.load(last, weights_only=True)  # the run goes on in its own dir
    assert state["epoch"] == 1 and state["global_step"] == 2 * first_state["global_step"]
    assert not (Path(resumed.paths.output_dir) / "checkpoints").exists()


def test_bf16_mixed_precision_on_cpu(train_cfg):
    run(train_cfg("trainer.precision=bf16-mixed", "debug=fdr"))


@pytest.mark.parametrize(("asked", "accelerator", "native_bf16", "warned"), [
    ("bf16-mixed", "cpu", False, True), ("bf16-true", "auto", False, True), ("bf16-mixed", "cpu", True, False),
    ("32", "cpu", False, False), ("auto", "cpu", False, False), ("bf16-mixed", "gpu", False, False)])
def test_bf16_asked_for_on_a_cpu_that_emulates_it_is_warned_about(monkeypatch, caplog, asked, accelerator,
                                                                   native_bf16, warned):
    from omegaconf import OmegaConf

    from modlab import precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native_bf16)
    cfg = OmegaConf.create({"trainer": {"precision": asked, "accelerator": accelerator}})
    with caplog.at_level(logging.WARNING, logger="modlab.precision"):
        precision.resolve_trainer(cfg)
    said = [r.getMessage() for r in caplog.records if "emulated" in r.getMessage()]
    assert bool(said) == warned
    if warned:
        assert said[0].startswith(f"precision {asked} on a CPU without native bf16") and "trainer.precision=auto" in said[0]


@pytest.mark.parametrize("native_bf16", [True, False])
def test_auto_precision_follows_the_cpu_and_is_saved(train_cfg, monkeypatch, native_bf16):
    from omegaconf import OmegaConf

    from modlab import precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native_bf16)
    assert precision.training_precision("16-mixed") == ("16-mixed", "as configured")
    cfg = train_cfg("trainer.precision=auto", "trainer.accelerator=cpu", "debug=fdr")
    run(cfg)
    saved = OmegaConf.load(Path(cfg.paths.output_dir) / "config.yaml")
    assert saved.trainer.precision == ("bf16-mixed" if native_bf16 else 32)


def test_train_py_cli_tiny_prints_table_and_writes_run_dir(tmp_path):
    proc = train_py("backbone.tiny=true", "dataset.reader.size=300", "trainer.max_epochs=1", "data.max_length=32")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "test metrics per label" in proc.stdout and "identity_hate" in proc.stdout
    run_dirs = list((tmp_path / "outputs" / "train" / "runs").iterdir())
    metrics = json.loads((run_dirs[0] / "metrics.json").read_text())
    assert {"test/f1/toxic", "test/auroc/threat", "val/auroc_macro"} <= metrics.keys()


def test_ddp_two_cpu_processes_score_each_row_once(tmp_path):
    """An odd test split makes DistributedSampler repeat a row on one rank; metrics must not count it twice."""
    proc = train_py("trainer=ddp", "trainer.accelerator=cpu", "backbone.tiny=true", "dataset.reader.size=190",
                    "trainer.max_epochs=1", "data.max_length=32", "callbacks.progress_bar=null", "logger=none",
                    "data.eval_batch_size=4")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "world_size: 2" in proc.stdout + proc.stderr or "GLOBAL_RANK: 1" in proc.stdout + proc.stderr
    run_dir = next((tmp_path / "outputs" / "train" / "runs").iterdir())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    splits = json.loads((run_dir / "splits.json").read_text())
    assert len(splits["test"]) % 2 == 1, "the test split must be uneven across 2 ranks for this test to bite"
    assert metrics["test/examples"] == len(splits["test"]) and metrics["val/examples"] == len(splits["val"])
    predictions = pd.read_csv(run_dir / "predictions.csv")
    assert sorted(predictions["id"].astype(str)) == sorted(map(str, splits["test"]))
    for name in ("toxic", "threat"):
        assert metrics[f"test/positives/{name}"] == (predictions[f"label_{name}"] == 1).sum()


# --- bad input: one clear line, before any training ----------------------------------------------------

def test_unknown_group_option_lists_valid_ones():
    proc = train_py("backbone=bert-large")
    assert proc.returncode != 0
    assert "Available options in 'backbone'" in proc.stderr and "minilm" in proc.stderr and "mpnet" in proc.stderr


def test_backbone_unavailable_offline_is_one_line_not_a_hang():
    proc = train_py("backbone=distilbert", timeout=60)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "distilbert-base-uncased" in lines[0] and "backbone.tiny=true" in lines[0]
    assert "HF_HUB_OFFLINE" in lines[0]


def test_max_length_beyond_positions_fails_before_training(train_cfg):
    proc = train_py("backbone.tiny=true", "data.max_length=4096")
    assert proc.returncode == 2
    assert "data.max_length=4096 exceeds" in proc.stderr and "data.max_length<=512" in proc.stderr
    assert "Epoch" not in proc.stdout


def test_checkpoint_with_other_labels_fails_before_training(train_cfg):
    first = train_cfg("logger=none", "debug=limit")
    run(first)
    ckpt = Path(first.paths.output_dir) / "checkpoints" / "last.ckpt"
    proc = train_py("backbone.tiny=true", "dataset.reader.size=100", "dataset.reader.labels=[spam,scam]",
                    f"ckpt_path={ckpt}")
    assert proc.returncode == 2
    assert "was trained on labels" in proc.stderr and "spam" in proc.stderr and "Epoch" not in proc.stdout


@pytest.mark.parametrize("algorithm", ["norm", "value"])
def test_bf16_clips_the_fused_optimizers_gradients_itself(train_cfg, algorithm):
    cfg = train_cfg()
    model = ModerationClassifier(cfg.backbone, cfg.head, cfg.loss, cfg.optim, ["a", "b"])
    model.trainer = type("T", (), {"estimated_stepping_batches": 20, "precision": "bf16-mixed"})()
    optimizer = model.configure_optimizers()["optimizer"]
    for p in model.parameters():
        p.grad = torch.full_like(p, 3.0)
    model.configure_gradient_clipping(optimizer, 0.5, algorithm)
    grads = [p.grad for p in model.parameters()]
    if algorithm == "norm":
        assert torch.linalg.vector_norm(torch.cat([g.flatten() for g in grads])) == pytest.approx(0.5, rel=1e-3)
    else:
        assert all(float(g.max()) == pytest.approx(0.5) for g in grads)


def test_an_unknown_fused_value_is_one_line(train_cfg):
    cfg = train_cfg("optim.optimizer.fused=maybe")
    model = ModerationClassifier(cfg.backbone, cfg.head, cfg.loss, cfg.optim, ["a", "b"])
    model.trainer = type("T", (), {"estimated_stepping_batches": 20, "precision": "32-true"})()
    with pytest.raises(ModlabError, match=r"optim.optimizer.fused='maybe' is not auto, true or false"):
        model.configure_optimizers()
