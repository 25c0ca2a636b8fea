"""Checkpoint files of the training layer.

A checkpoint holds tensors, plain containers (dict, list, tuple) and numbers/strings/bools/None only (the config as a
dict, the torch.Generator states as uint8 tensors), so it is read with ``torch.load(weights_only=True)``: a file from
someone else can carry no code that runs when it is opened.

It is written atomically: into a temporary file in the same folder, flushed and fsync'ed, then renamed over the
previous checkpoint with ``os.replace`` (atomic on POSIX), and the folder is fsync'ed so the rename itself is durable.
A crash or SIGKILL during a save leaves the previous checkpoint intact (and at most a stray ``.<name>.*.tmp`` file).
"""

import os
import pickle
import secrets
from typing import Any

import torch

__all__ = ["save_checkpoint", "load_checkpoint"]


def _fsync_directory(directory: str) -> None:
    if not hasattr(os, "O_DIRECTORY"):  # e.g. Windows, where a folder cannot be opened for fsync
        return
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(state: dict[str, Any], path: str) -> None:
    """Writes `state` to `path` atomically: `path` holds either the previous file or the complete new one.
    Missing parent folders are created."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    # O_EXCL: never write into someone else's file; 0o666 less the umask: the permissions torch.save would give.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)


def load_checkpoint(path: str) -> dict[str, Any]:
    """Reads a checkpoint with ``weights_only=True``; a file holding any other object is refused unopened."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"checkpoint: refusing to load {path}: it holds objects other than tensors, plain containers and numbers, "
            "and unpickling them could run arbitrary code (torch.load(weights_only=True) rejected it: "
            f"{str(error).splitlines()[0]})"
        ) from error
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint: {path} holds a {type(state).__name__}, expected a dict")
    return state
