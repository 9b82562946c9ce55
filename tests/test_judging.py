"""Subgroup bias and robustness to evasion as result sections: metrics.json, report, console, gate, eval."""

import json
import math
from pathlib import Path

import pytest
from conftest import SHARED_DATA, compose_config

from modlab.evaluation.gate import GateFailed
from modlab.evaluation.score_checkpoint import run as evaluate
from modlab.training.train import run as train

IDENTITIES = ["dataset.reader.identity_rate=0.4", "dataset.reader.identity_toxic_rate=0.8", "bias.min_subgroup=5"]


@pytest.fixture(scope="module")
def judged(tmp_path_factory):
    out = tmp_path_factory.mktemp("judged") / "run"
    from conftest import FAST

    train(compose_config("train", [*FAST, "dataset.reader.size=600", *IDENTITIES, "robust.max_rows=40"], out))
    return out


def test_synthetic_run_has_bias_and_robustness_keys_and_report_sections(judged, capsys):
    metrics = json.loads((judged / "metrics.json").read_text())
    for split in ("val", "test"):
        assert f"{split}/bias/final" in metrics and f"{split}/bias/size/muslim" in metrics
    assert not any(k.startswith("val/robust/") for k in metrics)  # robustness: the scored split only
    for kind in ("leetspeak", "spaces", "repeats", "homoglyphs", "zero_width", "case", "punctuation"):
        for what in ("auroc_macro", "f1_tuned_macro", "evasion_rate", "false_flag_rate", "mean_abs_delta"):
            assert f"test/robust/{kind}/{what}" in metrics
    assert metrics["test/robust/rows"] == 40 and metrics["test/robust/hard_negatives/count"] >= 30
    assert 0.0 <= metrics["test/robust/hard_negatives/fpr"] <= 1.0
    report = (judged / "report.md").read_text()
    assert "## Subgroup bias" in report and "## Robustness to evasion" in report and "| leetspeak |" in report
    assert "figures/robust.png" in report and (judged / "figures" / "robust.png").read_bytes()[:4] == b"\x89PNG"


def test_the_gate_judges_any_metric_and_eval_adds_the_same_sections(judged, tmp_path):
    cfg = compose_config("eval", [f"ckpt_path={judged}", "+trainer.enable_progress_bar=false", "robust.max_rows=40",
                                  "gate.at_most={test/robust/hard_negatives/fpr: -1}", "gate.fail=true"],
                         tmp_path / "eval")
    with pytest.raises(GateFailed, match=r"test/robust/hard_negatives/fpr .* > -1.000"):
        evaluate(cfg)
    out = Path(cfg.paths.output_dir)
    gate = json.loads((out / "gate.json").read_text())
    assert gate["failed"] == ["test/robust/hard_negatives/fpr"] and gate["metrics"][gate["failed"][0]]["max"] == -1
    metrics = json.loads((out / "metrics.json").read_text())
    trained = json.loads((judged / "metrics.json").read_text())
    assert metrics["test/bias/final"] == pytest.approx(trained["test/bias/final"], nan_ok=True)
    assert metrics["test/robust/leetspeak/auroc_macro"] == pytest.approx(
        trained["test/robust/leetspeak/auroc_macro"], nan_ok=True, abs=1e-6)


def test_switched_off_sections_leave_no_keys(train_cfg):
    cfg = train_cfg("dataset.reader.size=200", "robust.enabled=false", *IDENTITIES[:2], "bias.enabled=false")
    train(cfg)
    metrics = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert not any("/bias/" in k or "/robust/" in k for k in metrics)


def test_civil_comments_identities_give_bias_metrics(train_cfg):
    """The real identities subset (comment, target, male, female): every identity gets its three AUCs."""
    path = SHARED_DATA / "civil_comments-identities" / "subset.csv"
    if not path.exists():
        pytest.skip(f"{path} is not here")
    cfg = train_cfg("backbone.tiny=true", "trainer.max_epochs=1", "callbacks.progress_bar=null", "data.max_length=32",
                    "dataset=civil_comments", f"dataset.path={path}", "dataset.reader.labels=[toxicity]",
                    "bias.min_subgroup=50", "robust.max_rows=20", "robust.kinds=[leetspeak]", fast=False)
    train(cfg)
    metrics = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    for identity in ("male", "female"):
        assert metrics[f"test/bias/size/{identity}"] >= 50
        assert all(not math.isnan(metrics[f"test/bias/{m}/{identity}"]) for m in ("subgroup_auc", "bpsn_auc",
                                                                                   "bnsp_auc"))
    assert not math.isnan(metrics["test/bias/final"])


def test_wandb_offline_files_hold_the_new_tables_media_and_learning_rate(train_cfg, monkeypatch, tmp_path):
    import wandb
    from wandb_offline import read_offline_run

    from modlab.cli import main as modlab

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = train_cfg("logger=wandb", "+logger.wandb.settings.console=off", "dataset.reader.size=400", *IDENTITIES,
                    "robust.max_rows=30", "optim.log_grad_norm=true")
    train(cfg)
    assert wandb.run is None
    runs = sorted(Path(cfg.paths.output_dir).glob("wandb/offline-run-*"))
    data = read_offline_run(runs[0])
    summary = data["summary"]
    for key in ("test/confusion", "test/samples", "test/bias/table", "test/robust/table"):
        assert summary[key]["_type"] == "table-file", key
    for name in ("pr_curves", "roc_curves", "confusion"):
        assert summary[f"test/figures/{name}"]["_type"] == "image-file", name
    samples = json.loads((runs[0] / "files" / summary["test/samples"]["path"]).read_text())
    assert samples["columns"][:4] == ["id", "text", "label", "mark"] and {r[3] for r in samples["data"]} <= {"FP", "FN"}
    history_keys = {k for row in data["history"] for k in row}
    assert any(k.startswith("lr-") for k in history_keys), sorted(history_keys)[:20]
    assert "train/grad_norm" in history_keys
    assert "test/robust/leetspeak/auroc_macro" in history_keys and "test/bias/overall_auc" in history_keys
    assert modlab(["sync", str(tmp_path), "--dry-run"]) == 0
