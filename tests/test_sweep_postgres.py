"""Two sweep workers on one PostgreSQL study (the storage the docs promise for several machines), then a resume.

Needs a server: set MODLAB_TEST_POSTGRES_URL to a database the test may create tables in, e.g.

    pip install 'psycopg[binary]'
    MODLAB_TEST_POSTGRES_URL=postgresql+psycopg://sweeper@127.0.0.1:5432/studies PGPASSWORD=... \
        pytest tests/test_sweep_postgres.py

The study gets a fresh name and is deleted afterwards; other studies in the database are left alone.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

ROOT = Path(__file__).resolve().parents[1]
URL = os.environ.get("MODLAB_TEST_POSTGRES_URL")
FAST = ["backbone.tiny=true", "dataset.reader.size=200", "callbacks.progress_bar=null", "data.max_length=32",
        "logger=none", "trainer.max_epochs=1", "report.enabled=false", "test=false"]

pytestmark = pytest.mark.skipif(
    not URL, reason="no PostgreSQL server: set MODLAB_TEST_POSTGRES_URL=postgresql+psycopg://user@host:port/db "
                    "(password in PGPASSWORD; pip install 'psycopg[binary]') to run it")


def test_two_workers_share_one_postgres_study_and_resume(tmp_path):
    name = f"pgtest_{uuid.uuid4().hex[:8]}"
    cmd = [sys.executable, str(ROOT / "train.py"), "-m", *FAST, "hparams_search=focal", "hydra.sweeper.n_trials=4",
           "hydra.sweeper.pruner=none", f"hydra.sweeper.study_name={name}", f"hydra.sweeper.storage={URL}"]
    env = {**os.environ, "MODLAB_ROOT": str(tmp_path), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline",
           "TOKENIZERS_PARALLELISM": "false", "HYDRA_FULL_ERROR": "0"}
    try:
        workers = [subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True) for _ in range(2)]
        outputs = [w.communicate(timeout=300)[0] for w in workers]
        assert [w.returncode for w in workers] == [0, 0], "\n".join(o[-2000:] for o in outputs)

        study = optuna.load_study(study_name=name, storage=URL)
        done = [t for t in study.trials if t.state == TrialState.COMPLETE]
        assert len(done) == 4 and len({t.number for t in done}) == 4
        assert len({tuple(t.params.values()) for t in done}) == 4  # different points, not the same draws twice
        assert not [t for t in study.trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
        assert all(t.user_attrs.get("fail_kind") == "surplus" for t in study.trials if t.state == TrialState.FAIL)
        assert len({t.system_attrs["modlab:worker"]["pid"] for t in done}) == 2  # both workers ran trials

        again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
        assert f"resuming study '{name}'" in again.stdout + again.stderr
        assert len(optuna.load_study(study_name=name, storage=URL).trials) == len(study.trials)  # nothing new
    finally:
        with contextlib.suppress(KeyError):  # KeyError: the workers never created it
            optuna.delete_study(study_name=name, storage=URL)
