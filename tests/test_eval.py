"""eval.py: score a trained checkpoint on its own test split, on other datasets, and fail clearly."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import FAST, ROOT, compose_config

from modlab.errors import ModlabError
from modlab.evaluation.gate import GateFailed
from modlab.evaluation.score_checkpoint import run as evaluate
from modlab.training.train import run as train

LABELS = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trained") / "run"
    train(compose_config("train", FAST, out))
    return out


def eval_cfg(tmp_path, *overrides):
    """The eval config; with no dataset= it scores the training run's own dataset and held-out rows."""
    return compose_config("eval", ["+trainer.enable_progress_bar=false", *overrides], tmp_path / "eval")


def test_run_dir_reproduces_the_training_test_metrics(trained, tmp_path, caplog):
    cfg = eval_cfg(tmp_path, f"ckpt_path={trained}")
    with caplog.at_level("INFO"):
        value = evaluate(cfg)
    said = [r.getMessage() for r in caplog.records if "the training run's own dataset" in r.getMessage()]
    assert len(said) == 1 and "split=test: 30 rows" in said[0], said
    out = Path(cfg.paths.output_dir)
    metrics = json.loads((out / "metrics.json").read_text())
    expected = json.loads((trained / "metrics.json").read_text())
    assert value == metrics["test/auroc_macro"]
    shared = {k for k in expected if k.startswith("test/")}
    assert shared <= set(metrics) and "test/f1_tuned/toxic" in shared
    assert {k: metrics[k] for k in shared} == pytest.approx({k: expected[k] for k in shared}, nan_ok=True)
    assert {k: metrics[k] for k in metrics if k.startswith("val/threshold/")} == pytest.approx(
        {k: v for k, v in expected.items() if k.startswith("val/threshold/")})

    predictions = pd.read_csv(out / "predictions.csv")
    test_ids = json.loads((trained / "splits.json").read_text())["test"]
    assert sorted(predictions["id"]) == sorted(test_ids)
    assert list(predictions.columns[:2]) == ["id", "text"] and all(f"prob_{n}" in predictions for n in LABELS)
    assert (out / "report.md").exists() and (out / "figures" / "roc_curves.png").exists()
    saved = (out / "config.yaml").read_text()
    assert "all-MiniLM-L6-v2" in saved and "best.ckpt" in saved


def test_checkpoint_scores_every_row_of_another_dataset(trained, tmp_path):
    from modlab.data import jsonl, synthetic

    other = synthetic.generate(size=80, seed=7)
    path = jsonl.write(other, tmp_path / "other.jsonl")  # read back with the taxonomy inferred (sorted)
    cfg = eval_cfg(tmp_path, f"ckpt_path={trained / 'checkpoints' / 'best.ckpt'}", "dataset=jsonl",
                   f"dataset.path={path}", "split=all", "report.showcase=1")
    evaluate(cfg)
    out = Path(cfg.paths.output_dir)
    predictions = pd.read_csv(out / "predictions.csv")
    assert len(predictions) == 80 and sorted(predictions["id"]) == sorted(other.ids)
    by_id = predictions.set_index("id")
    for j, name in enumerate(LABELS):  # columns in the checkpoint's label order, labels kept with their rows
        assert by_id.loc[other.ids, f"label_{name}"].tolist() == other.labels[:, j].tolist()
    metrics = json.loads((out / "metrics.json").read_text())
    assert all(f"test/auroc/{n}" in metrics and f"test/f1_tuned/{n}" in metrics for n in LABELS)


def test_the_training_dataset_again_never_scores_training_rows_as_held_out(trained, tmp_path):
    """The default synthetic data (3,000 rows) holds the run's 300 rows: its carved test split overlaps them."""
    cfg = eval_cfg(tmp_path, f"ckpt_path={trained}", "dataset=synthetic")
    with pytest.raises(ModlabError, match=r"rows were in the training split of .*split=train\|all") as err:
        evaluate(cfg)
    assert "\n" not in str(err.value)
    cfg = eval_cfg(tmp_path, f"ckpt_path={trained}", "dataset=synthetic", "split=all")
    evaluate(cfg)  # asked for knowingly
    assert len(pd.read_csv(Path(cfg.paths.output_dir) / "predictions.csv")) == 3000


def test_a_bare_checkpoint_needs_a_dataset(trained, tmp_path):
    import shutil

    bare = tmp_path / "bare.ckpt"
    shutil.copy(trained / "checkpoints" / "best.ckpt", bare)
    with pytest.raises(ModlabError, match="not inside a training run dir.*pass dataset="):
        evaluate(eval_cfg(tmp_path, f"ckpt_path={bare}"))


def test_label_mismatch_is_one_clear_error(trained, tmp_path):
    cfg = eval_cfg(tmp_path, f"ckpt_path={trained}", "dataset=synthetic", "dataset.reader.size=300",
                   "dataset.reader.labels=[toxic,threat]")
    with pytest.raises(ModlabError, match=r"trained on labels .* but the dataset has \['toxic', 'threat'\]") as err:
        evaluate(cfg)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("overrides, message", [
    ([], "ckpt_path is required"),
    (["ckpt_path=/nowhere/best.ckpt"], "does not exist"),
    (["ckpt_path={tmp}"], "without checkpoints/best.ckpt"),
    (["ckpt_path={run}", "split=everything"], "split=everything is not one of"),
    (["ckpt_path={run}", "thresholds_path={tmp}/none.json"], "thresholds file .* does not exist"),
    (["ckpt_path={run}", "gate.min_f1={{toxc: 0.5}}"], "not labels of this dataset"),
])
def test_user_mistakes_are_one_line_errors(trained, tmp_path, overrides, message):
    cfg = eval_cfg(tmp_path, *(o.format(tmp=tmp_path, run=trained) for o in overrides))
    with pytest.raises(ModlabError, match=message) as err:
        evaluate(cfg)
    assert "\n" not in str(err.value)


def test_failed_gate_writes_everything_then_exits_3(trained, tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "eval.py"), f"ckpt_path={trained}",
         "gate.min_f1=1.0", "gate.fail=true", f"hydra.run.dir={tmp_path / 'cli'}"],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 3, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "quality gate failed" in errors[0]
    out = tmp_path / "cli"
    gate = json.loads((out / "gate.json").read_text())
    assert gate["passed"] is False and gate["metric"] == "f1_tuned" and set(gate["labels"]) == set(LABELS)
    assert (out / "metrics.json").exists() and (out / "report.md").exists() and (out / ".hydra").is_dir()


def test_training_tunes_thresholds_for_a_target_and_enforces_its_gate(train_cfg):
    cfg = train_cfg("thresholds.objective=recall", "thresholds.target=0.8", "gate.min_f1={toxic: 0.99, macro: 0.1}",
                    "gate.fail=true", "report.showcase=0")
    with pytest.raises(GateFailed, match="quality gate failed on test \\(f1_tuned\\): toxic") as err:
        train(cfg)
    assert err.value.exit_code == 3
    out = Path(cfg.paths.output_dir)
    payload = json.loads((out / "thresholds.json").read_text())
    assert payload["objective"] == "recall" and set(payload["thresholds"]) == set(LABELS)
    assert all(d["recall"] >= 0.8 for d in payload["details"].values() if d["tuned"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["val/threshold/toxic"] == pytest.approx(payload["thresholds"]["toxic"])
    gate = json.loads((out / "gate.json").read_text())
    assert "toxic" in gate["failed"] and set(gate["labels"]) == {"toxic", "macro"}
    assert "**FAIL**" in (out / "report.md").read_text() and (out / "predictions.csv").exists()


def test_bad_threshold_config_fails_before_training(train_cfg):
    cfg = train_cfg("thresholds.objective=precision")
    with pytest.raises(ModlabError, match="needs thresholds.target"):
        train(cfg)
    assert not (Path(cfg.paths.output_dir) / "checkpoints").exists()
