"""A full disk or a read-only directory, at start or mid-run: one `error:` line, exit 2, checkpoints intact.

The real faults need root (a small tmpfs, a read-only bind mount); where mounting is not permitted those
tests skip and say why, and the patched ones (a write that fails partway with ENOSPC) still run.
`FaultAt` is a test-only Lightning callback: `python train.py +callbacks.fault=...` (tests/ on PYTHONPATH)
breaks the disk at the start of a given epoch, after the previous epoch's checkpoints were written.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import lightning as L
import pytest
import torch
from conftest import FAST, ROOT

from modlab import io as modlab_io
from modlab.errors import ModlabError
from modlab.training import checkpoint_io
from modlab.training.checkpoint_io import AtomicCheckpointIO

# ------------------------------------------------------------------------------------------- fault injection

class HalfThenFull(io.BufferedWriter):
    """A file whose first write puts half its bytes on disk and then fails as a full disk does."""

    def write(self, data) -> int:
        view = memoryview(data)
        super().write(view[: len(view) // 2])
        super().flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def half_then_full_open(path, mode="wb", *args, **kwargs) -> HalfThenFull:
    """`open` as checkpoint_io sees it (set as its module global; other modules unaffected)."""
    return HalfThenFull(io.FileIO(path, "wb"))


def digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir()) if p.is_file()}


class FaultAt(L.Callback):
    """Test-only: at epoch `epoch`'s start, note the checkpoints' digests in `record`, then break the disk.

    how: `patch` (checkpoint writes fail halfway with ENOSPC), `fill` (a filler file leaves less room than a
    checkpoint on the file system of the checkpoints), `readonly` (the checkpoints dir becomes a read-only
    bind mount; its path goes into `record` first so the test can always unmount it).
    """

    def __init__(self, epoch: int, how: str, record: str) -> None:
        self.epoch, self.how, self.record = epoch, how, Path(record)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch != self.epoch:
            return
        ckpts = Path(trainer.checkpoint_callback.dirpath)
        self.record.write_text(json.dumps({"dir": str(ckpts), "digests": digests(ckpts)}))
        if self.how == "patch":
            checkpoint_io.open = half_then_full_open
        elif self.how == "fill":
            stat = os.statvfs(ckpts)
            room = stat.f_bavail * stat.f_frsize - (ckpts / "last.ckpt").stat().st_size // 2
            with open(ckpts.parent.parent / "filler", "wb") as f:  # outside the run dir, on the same disk
                f.truncate(0)
                for _ in range(room // (1 << 20)):
                    f.write(b"\0" * (1 << 20))
                f.write(b"\0" * (room % (1 << 20)))
        elif self.how == "readonly":
            for args in (["--bind", str(ckpts), str(ckpts)], ["-o", "remount,ro,bind", str(ckpts)]):
                subprocess.run(["mount", *args], check=True, capture_output=True)


# --------------------------------------------------------------------------------------------------- helpers

def train_py(*args: str, root: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, MODLAB_ROOT=str(root), PYTHONPATH=os.pathsep.join(
        [str(ROOT / "tests"), *filter(None, [os.environ.get("PYTHONPATH")])]))
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    """The run failed the modlab way: exit 2, exactly one `error:` line, no traceback anywhere."""
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, (proc.returncode, output[-3000:])
    assert "Traceback" not in output, output[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr[-3000:]
    return lines[0]


def assert_intact(record: Path) -> None:
    """The checkpoints that existed when the fault struck are byte-identical, loadable, and alone."""
    noted = json.loads(record.read_text())
    ckpts = Path(noted["dir"])
    assert noted["digests"].keys() == {"best.ckpt", "last.ckpt"}, noted
    assert digests(ckpts) == noted["digests"]  # same files, same bytes, no temporary file left behind
    assert not list(ckpts.glob(".*"))
    for name in noted["digests"]:
        assert torch.load(ckpts / name, weights_only=True)["epoch"] == 0


def mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True)


@pytest.fixture
def mounts():
    """Mount points to unmount at teardown (last first), whatever the test did."""
    points: list[Path] = []
    yield points
    for point in reversed(points):
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def mount_or_skip(mounts: list[Path], target: Path, *args: str) -> Path:
    if shutil.which("mount") is None:
        pytest.skip("no `mount` command here; the patched fault tests cover this path")
    target.mkdir(parents=True, exist_ok=True)
    proc = mount(*args, str(target))
    if proc.returncode:
        pytest.skip(f"mount {' '.join(args)} not permitted here ({proc.stderr.strip() or proc.returncode}); "
                    f"the patched fault tests cover this path")
    mounts.append(target)
    return target


# ------------------------------------------------------------------------------- the plugin, in process

def test_trainer_configs_all_get_the_atomic_plugin(train_cfg):
    from hydra.utils import instantiate

    from modlab import precision

    for trainer in ("default", "cpu", "gpu", "ddp"):
        cfg = train_cfg(f"trainer={trainer}")
        assert [p["_target_"] for p in cfg.trainer.plugins] == ["modlab.training.checkpoint_io.AtomicCheckpointIO"]
    cfg = train_cfg("trainer=cpu")
    precision.resolve_trainer(cfg)  # what train.py does before instantiating: auto -> this machine's precision
    trainer = instantiate(cfg.trainer, logger=False, enable_progress_bar=False)
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)


def test_a_write_failing_halfway_leaves_the_old_checkpoint_and_no_temp_file(tmp_path, monkeypatch):
    plugin, target = AtomicCheckpointIO(), tmp_path / "ckpts" / "best.ckpt"
    plugin.save_checkpoint({"state_dict": {"w": torch.arange(4.0)}, "epoch": 0}, target)
    before = target.read_bytes()
    monkeypatch.setattr(checkpoint_io, "open", half_then_full_open, raising=False)
    with pytest.raises(ModlabError) as err:
        plugin.save_checkpoint({"state_dict": {"w": torch.zeros(100_000)}, "epoch": 1}, target)
    message = str(err.value)
    assert "\n" not in message and str(target) in message and "No space left on device" in message
    assert "previous complete best.ckpt is kept" in message and "free space" in message and "paths.log_dir=" in message
    assert target.read_bytes() == before and [p.name for p in target.parent.iterdir()] == ["best.ckpt"]
    assert torch.equal(plugin.load_checkpoint(target)["state_dict"]["w"], torch.arange(4.0))


def test_a_read_only_directory_is_one_line_naming_the_checkpoint(tmp_path, monkeypatch):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(tmp_path))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(ModlabError, match=r"cannot write checkpoint .*last\.ckpt: Read-only file system; "
                                          r"make it writable"):
        AtomicCheckpointIO().save_checkpoint({"state_dict": {}}, tmp_path / "last.ckpt")


def test_written_checkpoints_are_complete_and_permissioned_like_other_files(tmp_path):
    target = tmp_path / "c" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(3)}, "epoch": 2}, target)
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~modlab_io.UMASK)
    assert torch.load(target, weights_only=True)["epoch"] == 2


# ------------------------------------------------------------------------- through `python train.py`

RUN = [*FAST, "trainer.max_epochs=3", "callbacks.early_stopping=null"]


def fault(epoch: int, how: str, record: Path) -> str:
    return f"+callbacks.fault={{_target_: test_faults.FaultAt, epoch: {epoch}, how: {how}, record: '{record}'}}"


def test_disk_full_mid_run_patched_is_one_line_and_keeps_the_checkpoints(tmp_path):
    record = tmp_path / "record.json"
    line = one_error_line(train_py(*RUN, fault(1, "patch", record), root=tmp_path))
    assert "cannot write checkpoint" in line and "No space left on device" in line and "free space" in line
    assert str(Path(json.loads(record.read_text())["dir"])) in line
    assert_intact(record)


def test_disk_really_full_mid_run_is_one_line_and_keeps_the_checkpoints(tmp_path, mounts):
    disk = mount_or_skip(mounts, tmp_path / "disk", "-t", "tmpfs", "-o", "size=64m", "tmpfs")
    record = tmp_path / "record.json"
    line = one_error_line(train_py(*RUN, fault(1, "fill", record), root=disk))
    assert "cannot write checkpoint" in line and "No space left on device" in line and str(disk) in line
    assert_intact(record)


def test_checkpoints_dir_turning_read_only_is_one_line_and_keeps_the_checkpoints(tmp_path, mounts):
    mount_or_skip(mounts, tmp_path / "probe", "--bind", str(tmp_path / "probe"))  # may we bind-mount?
    record = tmp_path / "record.json"
    try:
        line = one_error_line(train_py(*RUN, fault(1, "readonly", record), root=tmp_path))
    finally:
        if record.is_file():
            mounts.append(Path(json.loads(record.read_text())["dir"]))
    assert "cannot write checkpoint" in line and "Read-only file system" in line and "make it writable" in line
    assert_intact(record)


# Hydra creates the run dir before any modlab code runs; checkpoint_io.WritableRunDir checks it first.
RUN_DIR_CHECK = "++hydra.callbacks.writable_run_dir._target_=modlab.training.checkpoint_io.WritableRunDir"


def test_hydra_config_checks_the_run_dir(train_cfg):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        for name in ("train", "eval"):
            callbacks = compose(name, return_hydra_config=True).hydra.callbacks
            targets = [c.get("_target_") for c in callbacks.values()]
            assert "modlab.training.checkpoint_io.WritableRunDir" in targets, (name, targets)


def test_read_only_outputs_at_start_is_one_line(tmp_path, mounts):
    disk = mount_or_skip(mounts, tmp_path / "disk", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs")
    line = one_error_line(train_py(*FAST, RUN_DIR_CHECK, root=disk, timeout=300))
    assert f"cannot write the run dir {disk}/outputs/train/runs/" in line and "Read-only file system" in line
    assert "hydra.run.dir" in line and "paths.log_dir" in line


def test_uncreatable_run_dir_at_start_is_one_line(tmp_path):
    (tmp_path / "a_file").write_text("in the way")
    line = one_error_line(train_py(*FAST, RUN_DIR_CHECK, f"hydra.run.dir={tmp_path}/a_file/run", root=tmp_path,
                                   timeout=300))
    assert f"cannot write the run dir {tmp_path}/a_file/run" in line and "hydra.run.dir" in line


def test_a_writer_killed_mid_write_leaves_only_a_temp_file_that_the_next_write_removes(tmp_path):
    """kill -9 during an atomic write: the target never appears half written; the temporary file the killed
    writer left is removed by the next write of the same file once it is stale, a live writer's is kept."""
    import signal
    import time

    target = tmp_path / "table.arrow"
    script = f"""
import time
from modlab.io import atomic_path
with atomic_path({str(target)!r}) as tmp, open(tmp, "wb") as f:
    while True:
        f.write(b"x" * 65536); f.flush(); time.sleep(0.01)
"""
    child = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.time() + 60
        while not list(tmp_path.glob(".table.arrow.*.tmp")) or list(tmp_path.glob(".*.tmp"))[0].stat().st_size < 1 << 20:
            assert child.poll() is None and time.time() < deadline, "the writer did not start writing"
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    (killed,) = tmp_path.glob(".table.arrow.*.tmp")
    assert not target.exists()

    live = tmp_path / ".table.arrow.live.tmp"  # another writer, still writing
    live.write_bytes(b"partial")
    old = time.time() - modlab_io.STALE_S - 60
    os.utime(killed, (old, old))
    modlab_io.atomic_write_bytes(target, b"complete")
    assert target.read_bytes() == b"complete"
    assert not killed.exists() and live.exists()
    stale_ckpt = tmp_path / ".best.ckpt.k1ll3d.tmp"  # the checkpoint writer cleans up the same way
    stale_ckpt.write_bytes(b"half a checkpoint")
    os.utime(stale_ckpt, (old, old))
    checkpoint_io.write_durably(tmp_path / "best.ckpt", b"whole")
    assert not stale_ckpt.exists() and (tmp_path / "best.ckpt").read_bytes() == b"whole"
