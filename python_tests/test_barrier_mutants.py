"""Mutation test of the emulated CUDA tests: every `__syncthreads()` call site of the ops' device code
is switched off at run time, one at a time (the emulator's mutation switch,
BATCHGAN_EMULATOR_DISABLE_BARRIER), and the emulated tests must then fail. A barrier whose removal no
test notices is either not needed or not tested; both are defects. A surviving mutant is tried under
several schedule seeds before it counts as alive. Each run is a subprocess, so a mutant's wrong
results never reach the other tests."""

import json
import os
import subprocess
import sys

import pytest

from device_sources import op_barrier_sites

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
# The emulated op tests (each compares the emulated kernels with the CPU kernels) and the block
# reduction's own test (its contract allows two calls in a row).
EMULATED_TESTS = [
    os.path.join(TESTS_DIR, name)
    for name in (
        "test_emulator.py",
        "test_bernoulli_kl_loss.py",
        "test_minibatch_stddev.py",
        "test_pairwise_l1_features.py",
        "test_equivariant.py",
        "test_mix.py",
    )
]
SELECT = "emulated or block_reduction"
MUTANT_SEEDS = [0, 1, 2]
# pytest.main in a child process, then the barrier sites that ran there.
RUNNER = """
import json, sys
import pytest
code = pytest.main(sys.argv[1:])
import batchgan_ext._emulated as emu
print("BARRIER-SITES " + json.dumps({"exit": int(code), "sites": emu._barrier_sites()}))
"""


def run_emulated_tests(disabled_site: str, seed: int) -> dict:
    env = dict(os.environ, BATCHGAN_EMULATOR_DISABLE_BARRIER=disabled_site, BATCHGAN_EMULATOR_SEED=str(seed))
    args = ["-q", "-x", "-p", "no:cacheprovider", "-p", "no:randomly", "-k", SELECT, *EMULATED_TESTS]
    # From the tests' folder, as the suite runs: the installed package, not the source tree.
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, *args], cwd=TESTS_DIR, env=env, capture_output=True, text=True, timeout=900
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("BARRIER-SITES ")]
    assert lines, f"the emulated tests did not run:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    result = json.loads(lines[-1][len("BARRIER-SITES ") :])
    result["tail"] = proc.stdout[-1500:]
    return result


@pytest.fixture(scope="module")
def unmutated_run():
    return run_emulated_tests("", 0)


def test_unmutated_tests_pass_and_run_every_barrier(unmutated_run):
    assert unmutated_run["exit"] == 0, unmutated_run["tail"]
    not_run = sorted(set(op_barrier_sites()) - set(unmutated_run["sites"]))
    assert not not_run, f"barriers no emulated test runs: {not_run}"


@pytest.mark.parametrize("site", op_barrier_sites())
def test_barrier_mutant_is_killed(unmutated_run, site):
    assert unmutated_run["exit"] == 0, "the unmutated tests fail; mutants mean nothing"
    for seed in MUTANT_SEEDS:
        result = run_emulated_tests(site, seed)
        assert site in result["sites"], f"{site} did not run"
        if result["exit"] != 0:
            return  # killed: some emulated test fails without this barrier
    pytest.fail(f"mutant alive: without the barrier at {site} every emulated test passes (seeds {MUTANT_SEEDS})")
