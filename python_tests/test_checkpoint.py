"""Checkpoints of the training layer: only tensors and plain values, loaded with weights_only=True (a file carrying
code is refused and nothing runs), written atomically (a SIGKILL mid-save keeps the previous checkpoint, and resuming
from it reproduces the uninterrupted run bit-exactly)."""

import os
import shlex
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

import batchgan_ext
from batchgan_ext.train import TrainConfig, Trainer
from batchgan_ext.train.checkpoint import load_checkpoint

from test_train import TINY, tiny_cli_args

SUBPROCESS_TIMEOUT = 180  # seconds; each run below takes a few seconds


class _Payload:
    """Unpickling this runs a shell command: what a malicious checkpoint would carry."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, ("touch " + shlex.quote(self.marker),)


def _trained(method="mbgan", steps=2):
    trainer = Trainer(TrainConfig(method=method, dataset="ring8", **TINY))
    trainer.train(steps=steps, progress=False)
    return trainer


def _assert_same(a, b, where="state"):
    """Recursively equal, tensors bit-exactly (same dtype, shape and bits)."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), f"{where}: tensors differ"
    elif isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys {list(a)} != {list(b)}"
        for key in a:
            _assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def _plain_types(value, where="state"):
    """Types in `value` other than tensors, plain containers and primitives (empty when the checkpoint is safe)."""
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in _plain_types(k, where) + _plain_types(v, f"{where}[{k!r}]")]
    if isinstance(value, (list, tuple)):
        return [t for i, v in enumerate(value) for t in _plain_types(v, f"{where}[{i}]")]
    if isinstance(value, (torch.Tensor, str, int, float, bool, type(None))):
        return []
    return [f"{where}: {type(value).__name__}"]


# --------------------------------------------------------------------------------------------
# contents and loading


@pytest.mark.parametrize("method", ["standard", "minibatch", "bgan", "mbgan"])
def test_checkpoint_holds_only_tensors_and_plain_values(tmp_path, method):
    trainer = _trained(method)
    path = str(tmp_path / "ckpt.pt")
    trainer.save(path)
    state = torch.load(path, weights_only=True)
    assert _plain_types(state) == []
    assert isinstance(state["config"], dict) and state["config"]["method"] == method
    assert state["rng_mix"].dtype == torch.uint8
    _assert_same(state, trainer.state_dict())
    resumed = Trainer.from_checkpoint(path)
    assert resumed.step == 2
    _assert_same(resumed.state_dict(), trainer.state_dict())


def test_checkpoint_carrying_a_pickled_callable_is_refused_and_nothing_runs(tmp_path):
    state = _trained().state_dict()
    marker = tmp_path / "payload_ran"
    state["history"]["note"] = _Payload(str(marker))
    path = str(tmp_path / "evil.pt")
    torch.save(state, path)

    with pytest.raises(ValueError, match=r"checkpoint: refusing to load .*evil\.pt.*arbitrary code"):
        Trainer.from_checkpoint(path)
    with pytest.raises(ValueError, match="checkpoint: refusing to load"):
        load_checkpoint(path)
    assert not marker.exists()

    # The payload is live: the unsafe load that the trainer no longer does runs it.
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_a_file_that_is_not_a_trainer_checkpoint_is_a_clear_error(tmp_path):
    path = str(tmp_path / "weights.pt")
    torch.save({"generator": _trained().generator.state_dict()}, path)
    with pytest.raises(ValueError, match="checkpoint: .* is not a batchgan_ext.train checkpoint"):
        Trainer.from_checkpoint(path)
    torch.save([torch.zeros(2)], path)
    with pytest.raises(ValueError, match="checkpoint: .* holds a list, expected a dict"):
        load_checkpoint(path)


# --------------------------------------------------------------------------------------------
# atomic saves


def test_a_failing_save_keeps_the_previous_checkpoint_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    trainer = _trained()
    path = str(tmp_path / "ckpt.pt")
    trainer.save(path)
    before = open(path, "rb").read()
    trainer.train(steps=3, progress=False)

    def failing_save(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        trainer.save(path)
    monkeypatch.undo()
    assert open(path, "rb").read() == before
    assert sorted(os.listdir(tmp_path)) == ["ckpt.pt"]
    assert Trainer.from_checkpoint(path).step == 2


def test_save_replaces_the_file_and_keeps_the_usual_permissions(tmp_path):
    trainer = _trained()
    path = str(tmp_path / "ckpt.pt")
    torch.save({"other": 1}, str(tmp_path / "reference.pt"))  # the permissions a plain torch.save gives
    trainer.save(path)
    trainer.train(steps=3, progress=False)
    trainer.save(path)
    assert load_checkpoint(path)["step"] == 3
    assert sorted(os.listdir(tmp_path)) == ["ckpt.pt", "reference.pt"]
    assert os.stat(path).st_mode == os.stat(str(tmp_path / "reference.pt")).st_mode


# --------------------------------------------------------------------------------------------
# SIGKILL during a save

# Runs the CLI; with a save number > 0, that save writes half of its bytes into the temporary file, makes them durable,
# creates the `blocked` file for the test and sleeps until the test kills the process.
_DRIVER = textwrap.dedent(
    """
    import io, os, sys, time
    import torch
    from batchgan_ext.train.cli import main

    blocked, block_at_save, args = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    real_save, saves = torch.save, []

    def save_then_block(obj, f, *a, **k):
        saves.append(1)
        if len(saves) < block_at_save:
            return real_save(obj, f, *a, **k)
        buffer = io.BytesIO()
        real_save(obj, buffer, *a, **k)
        data = buffer.getvalue()
        f.write(data[: len(data) // 2])
        f.flush()
        os.fsync(f.fileno())
        with open(blocked, "w") as marker:
            marker.write(str(len(data)))
        time.sleep(600)

    if block_at_save:
        torch.save = save_then_block
    sys.exit(main(args))
    """
)


def _cli_args(out, *extra):
    return tiny_cli_args(out, "--checkpoint-every", "2", *extra, steps=6)


def _start_driver(tmp_path, name, block_at_save, args):
    driver = tmp_path / "driver.py"
    driver.write_text(_DRIVER)
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(batchgan_ext.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([package_parent, os.environ.get("PYTHONPATH", "")]))
    log = open(tmp_path / f"{name}.log", "w")
    blocked = tmp_path / f"{name}.blocked"
    proc = subprocess.Popen(
        [sys.executable, str(driver), str(blocked), str(block_at_save), *args],
        cwd=str(tmp_path),
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return proc, blocked, log


def _run_driver(tmp_path, name, args):
    proc, _, log = _start_driver(tmp_path, name, 0, args)
    try:
        code = proc.wait(timeout=SUBPROCESS_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    assert code == 0, (tmp_path / f"{name}.log").read_text()


def _metrics_without_wall_time(out):
    import json

    with open(os.path.join(out, "metrics.json")) as f:
        metrics = json.load(f)
    for run in metrics["runs"]:
        run.pop("wall_seconds")
    metrics.pop("table")  # holds the mean wall time
    return metrics


def test_sigkill_during_a_save_keeps_the_previous_checkpoint_and_resuming_is_bit_exact(tmp_path):
    interrupted, straight = tmp_path / "interrupted", tmp_path / "straight"
    # Saves happen at generator steps 2, 4 and 6 (and once more at the end): block in the one at step 4.
    proc, blocked, log = _start_driver(tmp_path, "killed", 2, _cli_args(interrupted))
    try:
        deadline = time.monotonic() + SUBPROCESS_TIMEOUT
        while not blocked.exists():
            assert proc.poll() is None, (
                "the training process ended before blocking:\n" + (tmp_path / "killed.log").read_text()
            )
            assert time.monotonic() < deadline, "the training process did not reach its second save in time"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=SUBPROCESS_TIMEOUT) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()

    # The process died halfway through writing the step-4 checkpoint: its partial temporary file is there ...
    full_size = int(blocked.read_text())
    temporaries = [name for name in os.listdir(interrupted) if name.endswith(".tmp")]
    assert len(temporaries) == 1 and temporaries[0].startswith(".mbgan.pt.")
    assert 0 < os.path.getsize(interrupted / temporaries[0]) < full_size
    # ... and the step-2 checkpoint is intact.
    checkpoint = str(interrupted / "mbgan.pt")
    assert Trainer.from_checkpoint(checkpoint).step == 2

    # The uninterrupted run, and the interrupted one resumed from its step-2 checkpoint, end bit-identical.
    _run_driver(tmp_path, "straight", _cli_args(straight))
    _run_driver(tmp_path, "resumed", _cli_args(interrupted, "--resume"))
    resumed, uninterrupted = load_checkpoint(checkpoint), load_checkpoint(str(straight / "mbgan.pt"))
    assert resumed["step"] == uninterrupted["step"] == 6
    resumed.pop("train_seconds")
    uninterrupted.pop("train_seconds")
    _assert_same(resumed, uninterrupted)
    assert _metrics_without_wall_time(interrupted) == _metrics_without_wall_time(straight)
