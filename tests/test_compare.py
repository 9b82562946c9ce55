"""`modlab compare` on a real multirun (python train.py -m, W&B offline per job) and on hand-made run dirs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FAST, ROOT
from wandb_offline import read_offline_run

from modlab.cli import main
from modlab.errors import ModlabError
from modlab.reporting.compare import compare, load_runs
from modlab.reporting.compare import rows as compare_rows

LABELS = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def multirun(tmp_path_factory) -> Path:
    """Two real training runs (head=mean,cls) from one `python train.py -m`, each with an offline W&B run."""
    root = tmp_path_factory.mktemp("multirun")
    env = {**os.environ, "MODLAB_ROOT": str(root), "WANDB_MODE": "offline", "NETRC": str(root / "no-netrc"),
           "HF_HUB_OFFLINE": "1"}
    env.pop("WANDB_API_KEY", None)
    result = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "-m", "head=mean,cls", "logger=wandb",
         "+logger.wandb.settings.console=off", *FAST, f"hydra.sweep.dir={root / 'sweep'}"],
        capture_output=True, text=True, timeout=400, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "sweep"


def test_compare_a_multirun_dir(multirun, capsys):
    assert main(["compare", str(multirun)]) == 0
    printed = capsys.readouterr().out
    assert "2 runs" in printed and all(n in printed for n in LABELS) and "val/auroc_macro" in printed
    markdown = (multirun / "compare.md").read_text()
    assert (multirun / "compare.png").read_bytes()[:8] == PNG
    rows = [line for line in markdown.splitlines() if line.startswith("| 0 |") or line.startswith("| 1 |")]
    assert len(rows) == 2
    values = {job: json.loads((multirun / job / "metrics.json").read_text())["val/auroc_macro"] for job in ("0", "1")}
    best = max(values, key=values.get)
    assert rows[0].startswith(f"| {best} |") and f"{values[best]:.3f}" in rows[0]
    header, _, body = compare_rows(load_runs([multirun]))
    # Only what differs is a column: the head (a Hydra choice, from .hydra/hydra.yaml) and its swept config.
    assert "backbone" not in header and "loss" not in header and "head" in header and "head._target_" in header
    for cells in body:
        row = dict(zip(header, cells, strict=True))
        assert f"head={row['head']}" in (multirun / row["run"] / ".hydra" / "overrides.yaml").read_text()
        assert row["head._target_"] == {"mean": "MeanHead", "cls": "ClsHead"}[row["head"]]
        assert all(" / " in row[n] for n in LABELS)


def test_each_multirun_job_is_its_own_wandb_run(multirun):
    runs = [read_offline_run(next((multirun / job / "wandb").glob("offline-run-*"))) for job in ("0", "1")]
    assert runs[0]["run"]["id"] != runs[1]["run"]["id"]
    assert {r["run"]["group"] for r in runs} == {f"train-{multirun.name}"}
    assert [r["run"]["name"].rsplit("-", 1)[1] for r in runs] == ["0", "1"]
    assert ["head:mean" in runs[0]["run"]["tags"], "head:cls" in runs[1]["run"]["tags"]] == [True, True]
    for r in runs:
        assert any("test/auroc/threat" in h for h in r["history"]) and "val/auroc_macro" in r["summary"]


def test_compare_explicit_run_dirs_with_options(multirun, tmp_path):
    path = compare([multirun / "1", multirun / "0"], out=tmp_path / "out", split="val", sort_by="val/f1_macro",
                   draw=False)
    text = path.read_text()
    assert path == tmp_path / "out" / "compare.md" and not (tmp_path / "out" / "compare.png").exists()
    assert "val/f1_macro" in text and "val split" in text
    runs = load_runs([multirun], split="val", sort_by="val/f1_macro")
    assert [r.value for r in runs] == sorted((r.value for r in runs), reverse=True)


def fake_run(path: Path, metrics: dict, config: str | None = None) -> Path:
    path.mkdir(parents=True)
    (path / "metrics.json").write_text(json.dumps(metrics))
    if config:
        (path / "config.yaml").write_text(config)
    return path


def test_runs_with_missing_values_and_other_labels(tmp_path, capsys):
    config = "optimized_metric: val/auroc_macro\nmonitor: {metric: val/auroc_macro, mode: max}\n" \
             "backbone: {name: org/model-x, tiny: false}\nhead: {_target_: modlab.models.heads.AttentionHead}\n" \
             "loss: {_target_: modlab.models.losses.FocalLoss}\ndataset: {name: jsonl}\n"
    fake_run(tmp_path / "runs" / "a", {"val/auroc_macro": 0.7, "test/auroc/spam": 0.8, "test/f1/spam": 0.5}, config)
    fake_run(tmp_path / "runs" / "b", {"val/auroc_macro": 0.9, "test/auroc/spam": 0.9, "test/f1/spam": None,
                                       "test/auroc/scam": 0.6, "test/f1/scam": 0.4}, config)
    fake_run(tmp_path / "runs" / "c", {"test/auroc/spam": 0.1})
    assert main(["compare", str(tmp_path / "runs"), "--no-plot"]) == 0
    text = (tmp_path / "runs" / "compare.md").read_text()
    lines = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| run")]
    assert [line.split(" | ")[0] for line in lines] == ["| b", "| a", "| c"]  # best first, no metric last
    assert lines[0].split(" | ")[1:5] == ["model-x", "attention", "focal", "jsonl"]
    assert lines[0].endswith("| 0.600 / 0.400 | 0.900 / - |") and "| - / - |" in lines[1]
    assert lines[2].split(" | ")[1:6] == ["-"] * 5
    assert "spam" in capsys.readouterr().out


def test_compare_errors_are_one_line(tmp_path, capsys):
    assert main(["compare", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {tmp_path / 'missing'} does not exist; pass run dirs or a multirun dir"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModlabError, match="no runs found"):
        compare([tmp_path / "empty"])
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "metrics.json").write_text("{")
    with pytest.raises(ModlabError, match="not valid JSON"):
        compare([tmp_path / "broken"])


def test_sorting_by_a_loss_puts_the_lowest_first(tmp_path):
    config = "optimized_metric: val/auroc_macro\nmonitor: {metric: val/auroc_macro, mode: max}\n"
    fake_run(tmp_path / "runs" / "a", {"val/auroc_macro": 0.9, "val/loss": 0.5, "test/auroc/spam": 0.9}, config)
    fake_run(tmp_path / "runs" / "b", {"val/auroc_macro": 0.7, "val/loss": 0.2, "test/auroc/spam": 0.7}, config)
    assert [r.name for r in load_runs([tmp_path / "runs"])] == ["a", "b"]
    runs = load_runs([tmp_path / "runs"], sort_by="val/loss")
    assert [(r.name, r.metric, r.mode) for r in runs] == [("b", "val/loss", "min"), ("a", "val/loss", "min")]


def test_a_sweep_shows_its_swept_hyperparameters_and_judgements(tmp_path):
    base = "optimized_metric: val/auroc_macro\nbackbone: {name: m, tiny: true}\npaths: {output_dir: /x/%s}\n"
    for name, lr, gamma, fpr in (("0", 1e-4, 2.0, 0.25), ("1", 3e-5, 1.0, 0.5)):
        fake_run(tmp_path / "sweep" / name,
                 {"val/auroc_macro": 0.8 + lr, "test/auroc/spam": 0.9, "test/f1/spam": 0.5, "test/bias/final": 0.7,
                  "test/robust/leetspeak/auroc_macro": 0.6, "test/robust/case/auroc_macro": 0.9,
                  "test/robust/leetspeak/evasion_rate": 0.4, "test/robust/case/evasion_rate": 0.0,
                  "test/robust/hard_negatives/fpr": fpr},
                 base % name + f"optim: {{lr: {lr}}}\nloss: {{gamma: {gamma}}}\n")
    header, _, body = compare_rows(load_runs([tmp_path / "sweep"]))
    assert "optim.lr" in header and "loss.gamma" in header and "backbone" not in header  # shared: not a column
    assert not any(h.startswith("paths.") for h in header)
    row = dict(zip(header, body[0], strict=True))
    assert row["optim.lr"] == "0.0001" and row["loss.gamma"] == "2"
    assert row["bias final"] == "0.700" and row["robust ROC-AUC (worst)"] == "0.600"
    assert row["evasion rate (worst)"] == "0.400" and row["hard-neg FPR"] == "0.250"


def test_runs_of_one_config_over_folds_and_seeds_are_one_mean_std_row(tmp_path):
    base = "optimized_metric: val/auroc_macro\nhead: {_target_: modlab.models.heads.MeanHead}\n"
    values = {("0", 0): 0.80, ("1", 1): 0.90, ("2", 2): 0.85}
    for (name, fold), auc in values.items():
        fake_run(tmp_path / "cv" / name, {"val/auroc_macro": auc, "test/auroc/spam": auc, "test/f1/spam": 0.5},
                 base + f"seed: {fold}\ndata: {{fold: {fold}, folds: 3}}\n")
    fake_run(tmp_path / "cv" / "other", {"val/auroc_macro": 0.5, "test/auroc/spam": 0.5},
             "optimized_metric: val/auroc_macro\nhead: {_target_: modlab.models.heads.ClsHead}\n")
    runs = load_runs([tmp_path / "cv"])
    assert [r.count for r in runs] == [3, 1]
    assert runs[0].value == pytest.approx(0.85) and runs[0].spread["val/auroc_macro"] == pytest.approx(0.05)
    header, _, body = compare_rows(runs)
    row = dict(zip(header, body[0], strict=True))
    assert row["val/auroc_macro"] == "0.850±0.050" and row["spam"].startswith("0.850±0.050 / 0.500")
    assert "(mean of 3)" in row["run"] and "seed" not in header and "data.fold" not in header
    assert len(load_runs([tmp_path / "cv"], combine=False)) == 4
