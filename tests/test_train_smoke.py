import json

from modlab.training.train import run


def test_fast_run_writes_metrics_and_checkpoints(train_cfg):
    cfg = train_cfg()
    value = run(cfg)
    out = __import__("pathlib").Path(cfg.paths.output_dir)
    metrics = json.loads((out / "metrics.json").read_text())
    assert value == metrics["val/auroc_macro"]
    assert "test/f1/toxic" in metrics and "test/auroc/threat" in metrics and "val/auroc_macro" in metrics
    assert (out / "checkpoints" / "best.ckpt").exists() and (out / "checkpoints" / "last.ckpt").exists()
    assert (out / "config.yaml").exists() and (out / "splits.json").exists()
