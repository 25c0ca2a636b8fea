"""The C++/CUDA sources as the tests read them: comments blanked out (line numbers kept), and the
device code's `__syncthreads()` call sites, named as the emulator names them ("<file name>:<line>"),
for the tests that switch barriers off at run time."""

import pathlib
import re

CSRC = pathlib.Path(__file__).resolve().parent.parent / "csrc"

_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.DOTALL)


def blank(match: re.Match) -> str:
    """The matched text as spaces, its newlines kept (so line numbers stay)."""
    return re.sub(r"[^\n]", " ", match.group(0))


def without_comments(source: str) -> str:
    return _COMMENT.sub(blank, source)


def barrier_sites(path: pathlib.Path) -> list[str]:
    """Every `__syncthreads()` call of one C++/CUDA file, comments ignored."""
    code = without_comments(path.read_text())
    return [
        f"{path.name}:{number}" for number, line in enumerate(code.splitlines(), start=1) if "__syncthreads()" in line
    ]


def op_device_files() -> list[pathlib.Path]:
    """The ops' device code: every csrc/ops/<op>/cuda/*.cuh and the shared device API (its block
    reduction)."""
    files = sorted(CSRC.glob("ops/*/cuda/*.cuh")) + [CSRC / "device" / "device_api.h"]
    assert len(files) > 4 and all(p.exists() for p in files), f"expected the csrc tree at {CSRC}"
    return files


def op_barrier_sites() -> list[str]:
    return [site for path in op_device_files() for site in barrier_sites(path)]
