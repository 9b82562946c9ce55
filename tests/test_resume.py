"""Resume with fewer overrides than the original run: the model from the checkpoint, the run dir continued."""

import json
import subprocess
import sys

from conftest import ROOT
from omegaconf import OmegaConf

TINY = ["backbone.tiny=true", "data.max_length=32", "callbacks.progress_bar=null"]


def train_py(tmp_path, *args):
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], capture_output=True, text=True,
                          timeout=600, cwd=ROOT)


def test_resume_takes_the_model_from_the_checkpoint_and_continues_in_its_run_dir(tmp_path):
    first = tmp_path / "first"
    proc = train_py(tmp_path, *TINY, "head=attention", "loss=focal", "dataset.reader.size=200",
                    "trainer.max_epochs=1", f"hydra.run.dir={first}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Only the checkpoint and the new epoch budget: head, loss, dataset size come from the run.
    proc = train_py(tmp_path, f"ckpt_path={first}/checkpoints/last.ckpt", "trainer.max_epochs=2",
                    f"hydra.run.dir={tmp_path / 'second'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    saved = OmegaConf.load(first / "config.yaml")
    assert saved.head._target_.endswith("AttentionHead") and saved.loss._target_.endswith("FocalLoss")
    assert saved.trainer.max_epochs == 2 and saved.dataset.reader.size == 200 and saved.backbone.tiny
    metrics = json.loads((first / "metrics.json").read_text())
    assert metrics["test/examples"] == 20  # the original run's 200 rows, not the default 3,000
    assert not (tmp_path / "second" / "metrics.json").exists()
    last = subprocess.run([sys.executable, "-c", "import torch,sys; print(torch.load(sys.argv[1], weights_only=True)"
                           "['global_step'])", str(first / "checkpoints" / "last.ckpt")], capture_output=True, text=True)
    # 2 epochs x 5 batches (160 training rows, batch 32): training went on in the same run dir. (Its 'epoch' is 1
    # or 2 depending on whether the last epoch improved the monitored metric, where Lightning saves last.ckpt.)
    assert last.stdout.strip() == "10", last.stderr


def test_resume_with_a_contradicting_override_is_one_line(tmp_path):
    first = tmp_path / "first"
    assert train_py(tmp_path, *TINY, "head=attention", "dataset.reader.size=100", "trainer.max_epochs=1",
                    f"hydra.run.dir={first}").returncode == 0
    proc = train_py(tmp_path, f"ckpt_path={first}/checkpoints/last.ckpt", "head=cls",
                    f"hydra.run.dir={tmp_path / 'second'}")
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "was trained with head" in errors[0] and "drop the head override" in errors[0]
