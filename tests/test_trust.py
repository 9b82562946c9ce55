"""What is right today stays right: no API key in any saved file or log, and file modes follow the umask."""

import os
import stat
import subprocess
import sys

from conftest import FAST, ROOT

SECRET = "k" * 8 + "0123456789abcdef0123456789abcdef"  # shaped like a W&B key


def test_no_api_key_in_any_saved_file_and_modes_follow_the_umask(tmp_path):
    run_dir = tmp_path / "run"
    env = {**os.environ, "WANDB_API_KEY": SECRET, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1",
           "MODLAB_ROOT": str(tmp_path)}
    proc = subprocess.run(
        ["bash", "-c", f"umask 027 && exec {sys.executable} {ROOT / 'train.py'} \"$@\"", "train",
         *FAST, "logger=wandb", "+logger.wandb.settings.console=off", f"hydra.run.dir={run_dir}"],
        capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert SECRET not in proc.stdout + proc.stderr
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "best.ckpt" for p in files) and any(p.suffix == ".wandb" for p in files)
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path
        if "wandb" not in path.parts:  # wandb's own files follow its rules
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode & 0o027 == 0, f"{path} has mode {oct(mode)} under umask 027"
