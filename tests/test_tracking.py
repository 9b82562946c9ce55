"""W&B offline runs read back with wandb's own record format; W&B failures never break a run."""

import json
import logging
import math
import time
from pathlib import Path

import pytest
import wandb
from wandb_offline import read_offline_run, wandb_records

from modlab.tracking.loggers import (
    SafeWandbLogger,
    finish_loggers,
    instantiate_loggers,
)
from modlab.tracking.runinfo import run_identity
from modlab.training.train import run

LABELS = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]
QUIET = "+logger.wandb.settings.console=off"


@pytest.fixture(autouse=True)
def no_credentials(tmp_path, monkeypatch):
    """No API key from the environment or a developer's ~/.netrc; offline unless a test says otherwise."""
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    yield
    if wandb.run is not None:  # never leak a run into the next test
        wandb.run.finish()


def offline_run(output_dir) -> Path:
    runs = sorted(Path(output_dir).glob("wandb/offline-run-*"))
    assert len(runs) == 1, runs
    return runs[0]


def wandb_logger(train_cfg, *overrides):
    cfg = train_cfg("logger=wandb", QUIET, *overrides)
    loggers = instantiate_loggers(cfg.logger, cfg)
    return cfg, loggers, next((x for x in loggers if isinstance(x, SafeWandbLogger)), None)


def test_training_run_logs_per_label_metrics_best_summary_table_and_curves(train_cfg):
    cfg = train_cfg("logger=[wandb,tensorboard]", QUIET, "trainer.max_epochs=2",
                    "+optuna={study_name: focal-study, trial_number: 3}")
    run(cfg)
    out = Path(cfg.paths.output_dir)
    metrics = json.loads((out / "metrics.json").read_text())
    data = read_offline_run(offline_run(out))
    assert wandb.run is None, "the job's W&B run is finished at the end of the job"

    info = data["run"]
    assert info["group"] == "focal-study" and info["job_type"] == "train" and info["name"].endswith("-3")
    assert {"backbone:minilm-tiny", "head:mean", "loss:bce", "dataset:synthetic"} <= set(info["tags"])
    assert data["config"]["optim"]["lr"] == cfg.optim.lr and data["config"]["backbone"]["tiny"] is True
    assert data["config"]["optuna"]["study_name"] == "focal-study"

    epochs = [h for h in data["history"] if "val/auroc_macro" in h]
    assert len(epochs) >= 3  # two validation epochs + the best checkpoint's validation
    for row in epochs:
        for metric in ("f1", "precision", "recall", "auroc", "auprc"):
            assert all(f"val/{metric}/{n}" in row for n in LABELS), metric
    tested = [h for h in data["history"] if "test/auroc/threat" in h]
    assert tested and all(f"test/f1/{n}" in tested[0] for n in LABELS)
    assert any(f"test/f1_tuned/{n}" in h for h in data["history"] for n in LABELS)

    best = max(h["val/auroc_macro"] for h in epochs[:2])
    assert data["summary"]["val/auroc_macro"] == pytest.approx(best)
    assert data["summary"]["val/auroc_macro"] == pytest.approx(metrics["val/auroc_macro"])

    table = data["summary"]["test/per_label"]
    assert table["_type"] == "table-file"
    table = json.loads((offline_run(out) / "files" / table["path"]).read_text())
    thresholds = json.loads((out / "thresholds.json").read_text())["thresholds"]
    column = table["columns"].index("threshold")
    assert {r[0]: r[column] for r in table["data"]} == pytest.approx(thresholds)
    assert "test/curves/pr_table" in data["summary"] and "test/curves/roc_table" in data["summary"]

    assert (out / "csv" / "metrics.csv").exists() and list((out / "tensorboard").glob("events.*"))


def test_summary_keeps_the_best_value_not_the_last(train_cfg):
    cfg, loggers, logger = wandb_logger(train_cfg)
    for step, value in enumerate([0.5, 0.9, 0.6]):
        logger.log_metrics({"val/auroc_macro": value}, step=step)
    logger.log_result(_empty_result(), best=0.9)
    finish_loggers(loggers)
    data = read_offline_run(offline_run(cfg.paths.output_dir))
    assert [h["val/auroc_macro"] for h in data["history"] if "val/auroc_macro" in h] == [0.5, 0.9, 0.6]
    assert data["summary"]["val/auroc_macro"] == 0.9


def test_no_api_key_means_offline_with_one_line(train_cfg, monkeypatch, caplog):
    monkeypatch.delenv("WANDB_MODE")
    with caplog.at_level(logging.INFO, logger="modlab.tracking.loggers"):
        cfg, loggers, logger = wandb_logger(train_cfg)
    assert logger.mode == "offline"
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("W&B:")]
    assert len(lines) == 1 and "offline (no API key configured)" in lines[0] and "wandb sync" in lines[0]
    assert str(Path(cfg.paths.output_dir) / "wandb") in lines[0]
    finish_loggers(loggers)


def test_online_without_a_key_falls_back_to_offline(train_cfg, monkeypatch, caplog):
    monkeypatch.setenv("WANDB_MODE", "online")
    start = time.perf_counter()
    with caplog.at_level(logging.INFO, logger="modlab.tracking.loggers"):
        cfg, loggers, logger = wandb_logger(train_cfg)
    assert logger.mode == "offline" and time.perf_counter() - start < 30
    assert any("online init failed" in r.getMessage() for r in caplog.records)
    finish_loggers(loggers)
    assert offline_run(cfg.paths.output_dir)


@pytest.mark.slow
def test_online_with_a_key_but_no_network_falls_back_to_offline_in_bounded_time(train_cfg, monkeypatch, caplog):
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    start = time.perf_counter()
    with caplog.at_level(logging.INFO, logger="modlab.tracking.loggers"):
        cfg, loggers, logger = wandb_logger(train_cfg, "logger.wandb.init_timeout=5")
    elapsed = time.perf_counter() - start
    assert logger.mode == "offline" and elapsed < 60, elapsed
    assert any("online init failed" in r.getMessage() for r in caplog.records)
    finish_loggers(loggers)


def test_wandb_that_cannot_start_is_dropped(train_cfg, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise wandb.errors.CommError("service unavailable")

    monkeypatch.setattr(wandb, "init", broken)
    with caplog.at_level(logging.WARNING, logger="modlab.tracking.loggers"):
        _, loggers, logger = wandb_logger(train_cfg)
    assert logger is None and [type(x).__name__ for x in loggers] == ["CSVLogger"]
    assert any("W&B disabled for this run" in r.getMessage() for r in caplog.records)


def test_wandb_failing_mid_run_does_not_crash_training(train_cfg, monkeypatch, caplog):
    def broken(self, *args, **kwargs):
        raise OSError("wandb service went away")

    monkeypatch.setattr(wandb.sdk.wandb_run.Run, "log", broken)
    cfg = train_cfg("logger=wandb", QUIET)
    with caplog.at_level(logging.WARNING, logger="modlab.tracking.loggers"):
        value = run(cfg)
    assert not math.isnan(value) and (Path(cfg.paths.output_dir) / "metrics.json").exists()
    warnings = [r.getMessage() for r in caplog.records if "W&B stopped logging" in r.getMessage()]
    assert len(warnings) == 1 and "OSError" in warnings[0]


def test_finish_never_hangs_the_job(train_cfg, caplog):
    _, loggers, logger = wandb_logger(train_cfg, "logger.wandb.finish_timeout=0.3")
    run_ = logger.experiment
    real_finish = run_.finish
    run_.finish = lambda **kw: time.sleep(3)  # an upload that does not come back
    start = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="modlab.tracking.loggers"):
        finish_loggers(loggers)
    assert time.perf_counter() - start < 2
    assert any("did not complete" in r.getMessage() for r in caplog.records)
    real_finish()


def test_each_job_is_its_own_run(train_cfg):
    cfg_a, _, first = wandb_logger(train_cfg)
    first_dir = str(cfg_a.paths.output_dir)  # resolved now: the next compose changes hydra's output_dir
    first_id = first.experiment.id
    _, loggers, second = wandb_logger(train_cfg)  # the previous job never finished its run
    assert second.experiment.id != first_id
    finish_loggers(loggers)
    first_run = offline_run(first_dir)
    assert read_offline_run(first_run)["run"]["id"] == first_id  # (waits for the exit record)
    assert "exit" in [r.WhichOneof("record_type") for r in wandb_records(next(first_run.glob("*.wandb")))]


def test_reader_rejects_corrupt_files(tmp_path, train_cfg):
    cfg, loggers, logger = wandb_logger(train_cfg)
    finish_loggers(loggers)
    read_offline_run(offline_run(cfg.paths.output_dir))  # flushed
    path = next(offline_run(cfg.paths.output_dir).glob("*.wandb"))
    data = bytearray(path.read_bytes())
    data[40] ^= 0xFF
    (tmp_path / "bad.wandb").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="checksum"):
        list(wandb_records(tmp_path / "bad.wandb"))


def test_identity_without_hydra_comes_from_the_config(train_cfg):
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    cfg = train_cfg("head=attention", "loss=weighted_bce")
    resolved = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    HydraConfig.instance().cfg = None  # as in a plain Python call
    group, name, tags = run_identity(resolved, None, None, ["x"])
    assert group is None and name == "all-MiniLM-L6-v2-tiny-attention-weighted_bce"
    assert tags == ["x", "backbone:all-MiniLM-L6-v2-tiny", "head:attention", "loss:weighted_bce", "dataset:synthetic"]


def _empty_result():
    """An evaluation result of a few hand-made rows (the W&B table needs one)."""
    import numpy as np

    from modlab.evaluation.result import Predictions, evaluate

    labels = np.array([[1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]], dtype=np.float32)
    return evaluate(Predictions(labels * 0.8 + 0.1, labels, ("a", "b"), ("x", "y")), LABELS, "val")


def test_a_server_that_never_answers_costs_at_most_init_timeout(train_cfg, monkeypatch, caplog):
    """A socket that accepts and never replies: the W&B start is bounded by init_timeout, then offline."""
    import contextlib
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(server.accept()[0])  # keep the connection open, say nothing

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{server.getsockname()[1]}")
    monkeypatch.setenv("WANDB_API_KEY", "f" * 40)
    monkeypatch.delenv("WANDB_MODE")
    try:
        started = time.monotonic()
        cfg, loggers, logger = wandb_logger(train_cfg, "logger.wandb.init_timeout=3")
        finish_loggers(loggers)
        elapsed = time.monotonic() - started
        assert logger is not None and logger.mode == "offline"
        assert elapsed < 3 + 6, elapsed  # the bound plus an offline start; without the probe: 14.6 s at 3
        assert any("did not answer within init_timeout=3" in r.getMessage() for r in caplog.records)
    finally:
        stop.set()
        thread.join()
        server.close()
        for conn in held:
            conn.close()
