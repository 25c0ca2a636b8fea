"""The day a GPU is lent (issue 14, deliverable 7): every check that needs a GPU, in one run of at
most 8 minutes on one H100-class GPU, with each stage's time printed and one JSON written.

Stages, in order (`benchmarks/gpu_check.sh` runs the first, the build, and passes its time here):
  build       batchgan_ext built with the CUDA kernels for the GPU found (TORCH_CUDA_ARCH_LIST from
              torch.cuda.get_device_capability(), BATCHGAN_FORCE_CUDA=1, .ci/setup_env.sh)
  tests       the whole test suite, with BATCHGAN_TEST_BACKENDS=emulated,cuda: every test that compares
              the emulated CUDA kernels with the CPU ones also compares the real CUDA kernels
  sanitizer   compute-sanitizer memcheck, racecheck, initcheck and synccheck (four processes at once)
              over the op tests' CUDA cases, checking the package's kernels only
  graph       an M-BGAN discriminator + generator step (2D and image networks) run once under
              torch.cuda.set_sync_debug_mode("error") (it raises on a host sync), then captured in a
              CUDA graph and replayed
  benchmarks  the kernel benchmarks' candidates (benchmarks/bench_*.py) on the GPU, float32 and
              bfloat16, timed with CUDA events: the package's op against the naive PyTorch form eager
              and under torch.compile (medians of interleaved rounds)

    bash benchmarks/gpu_check.sh             on a machine with a GPU (exit 2 without one)
    bash benchmarks/gpu_check.sh --dry-run   anywhere: every stage's CPU-side logic, tiny sizes, no build

The dry run executes the same code on the CPU: the stage runner and its budget, the JSON and the
table, the benchmark harness with a wall clock instead of CUDA events, the training step eagerly,
the test selection that the tests and sanitizer stages hand to pytest, and the arch detection on
made-up capabilities. Each stage is marked "dry-run" (its CPU side passed) or "failed".

This module imports only the standard library at the top, so that the GPU check before the build
runs with any python3.
"""

import argparse
import dataclasses
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(HERE)
DEFAULT_OUT = os.path.join(HERE, "results", "gpu_check.json")
SCHEMA = "batchgan_ext.gpu_check/1"
NO_GPU_EXIT_CODE = 2

# Seconds per stage on one H100-class GPU; their sum is the whole run's budget (8 minutes). They are
# estimates until the first GPU day: the JSON records each stage's time to set them from.
STAGE_BUDGETS = {"build": 150.0, "tests": 90.0, "sanitizer": 90.0, "graph": 30.0, "benchmarks": 120.0}
# The dry run's budget: the CPU-side logic on 2 shared cores, tiny sizes.
DRY_RUN_BUDGETS = {"build": 5.0, "tests": 20.0, "sanitizer": 20.0, "graph": 15.0, "benchmarks": 20.0}

# The op tests that compute-sanitizer runs: the tests taking the `emulated` fixture, which the cuda
# backend (python_tests/conftest.py) turns into real-kernel tests.
OP_TEST_FILES = (
    "python_tests/test_mix.py",
    "python_tests/test_bernoulli_kl_loss.py",
    "python_tests/test_equivariant.py",
    "python_tests/test_minibatch_stddev.py",
    "python_tests/test_pairwise_l1_features.py",
    "python_tests/test_host_syncs.py",
)
# Tests that pass invalid values to the backend (marked emulated_only), which the dry run checks
# the cuda backend keeps away from.
INVALID_VALUE_TEST_FILES = (
    "python_tests/test_fuzz_mixing.py",
    "python_tests/test_fuzz_minibatch.py",
    "python_tests/test_fuzz_equivariant.py",
)
SANITIZER_TOOLS = ("memcheck", "racecheck", "initcheck", "synccheck")
# Every kernel of the package lives in namespace batchgan (csrc/ops/*/cuda/*_kernels.cuh); torch's
# and cuBLAS's kernels are not ours to check (and initcheck reports on some of them).
SANITIZER_KERNEL_FILTER = "kns=batchgan"

NO_GPU_MESSAGE = f"""gpu_check: no CUDA device found (torch.cuda.is_available() is False and nvidia-smi lists no GPU).

This command is for a machine with a GPU. There it builds batchgan_ext for the GPU found
(TORCH_CUDA_ARCH_LIST from its compute capability), runs the test suite with the CUDA backend,
runs compute-sanitizer {"/".join(SANITIZER_TOOLS)} over the op tests, runs an M-BGAN training step
under torch.cuda.set_sync_debug_mode("error") and captures it in a CUDA graph, and times the
kernels with CUDA events (float32 and bfloat16, against naive PyTorch eager and torch.compile),
within {sum(STAGE_BUDGETS.values()) / 60:.0f} minutes, writing {os.path.relpath(DEFAULT_OUT, REPO_ROOT)}.

Nothing was built. To check its CPU-side logic on this machine:
    bash benchmarks/gpu_check.sh --dry-run"""


# -------------------------------------------------------------------------------------------
# the GPU found and the architectures to build for


def arch_list(capabilities) -> str:
    """TORCH_CUDA_ARCH_LIST for the GPUs found, from their (major, minor) compute capabilities
    (torch.cuda.get_device_capability()): each distinct one once, ascending, e.g. [(9, 0)] ->
    "9.0", [(9, 0), (8, 6), (9, 0)] -> "8.6;9.0". Only the GPUs present: a one-arch build is the
    fastest, and the checks are about this machine's GPU."""
    capabilities = list(capabilities)
    if not capabilities:
        raise ValueError("capabilities: no GPU found (an empty list); expected (major, minor) pairs")
    for cap in capabilities:
        valid = isinstance(cap, (tuple, list)) and len(cap) == 2
        valid = valid and all(isinstance(v, int) and not isinstance(v, bool) for v in cap)
        if not valid or cap[0] < 1 or cap[1] < 0:
            raise ValueError(f"capabilities: expected (major, minor) pairs of non-negative ints, got {cap!r}")
    return ";".join(f"{major}.{minor}" for major, minor in sorted({tuple(c) for c in capabilities}))


def parse_nvidia_smi_capabilities(text: str) -> list[tuple[int, int]]:
    """The capabilities in `nvidia-smi --query-gpu=compute_cap --format=csv,noheader` output
    ("9.0" per line), for a machine whose python has no CUDA torch yet."""
    caps = []
    for line in text.splitlines():
        match = re.fullmatch(r"\s*(\d+)\.(\d+)\s*", line)
        if match:
            caps.append((int(match.group(1)), int(match.group(2))))
    return caps


def detect_capabilities() -> list[tuple[int, int]]:
    """The compute capabilities of the visible GPUs: from torch where it is a CUDA build that sees
    one, else from nvidia-smi; [] without a GPU (and with CUDA_VISIBLE_DEVICES set empty)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return []
    try:
        import torch

        if torch.cuda.is_available():
            return [tuple(torch.cuda.get_device_capability(i)) for i in range(torch.cuda.device_count())]
    except ImportError:
        pass
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run(
            [smi, "--query-gpu=compute_cap", "--format=csv,noheader"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return parse_nvidia_smi_capabilities(out.stdout) if out.returncode == 0 else []


# -------------------------------------------------------------------------------------------
# budget and stage runner


@dataclasses.dataclass
class Budget:
    """Seconds per stage; the whole run's budget is their sum. A stage that takes longer than its
    own budget is reported over budget, and is stopped at `overrun` times its budget or when the
    whole budget runs out (so that a slow test suite does not leave no time for the GPU stages
    after it); a stage that starts with the whole budget used up is skipped."""

    stages: dict[str, float]
    overrun: float = 2.0

    def __post_init__(self):
        if not self.stages:
            raise ValueError("stages: expected at least one stage budget")
        for name, seconds in self.stages.items():
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
                raise ValueError(f"stages[{name!r}]: expected a positive number of seconds, got {seconds!r}")

    @property
    def total(self) -> float:
        return float(sum(self.stages.values()))

    def remaining(self, elapsed: float) -> float:
        return max(0.0, self.total - elapsed)

    def timeout(self, name: str, elapsed: float) -> float:
        """Seconds stage `name` may run when it starts `elapsed` seconds into the run."""
        return min(self.remaining(elapsed), self.overrun * self.stages[name])

    def over(self, name: str, seconds: float) -> bool:
        return seconds > self.stages[name]

    def scaled(self, factor: float) -> "Budget":
        if not factor > 0:
            raise ValueError(f"budget scale: expected a positive factor, got {factor!r}")
        return Budget({name: seconds * factor for name, seconds in self.stages.items()}, self.overrun)


class StageFailed(Exception):
    """A stage ran and found a problem; `details` go into the JSON."""

    status = "failed"

    def __init__(self, message: str, details: dict | None = None):
        super().__init__(message)
        self.details = details or {}


class OutOfTime(StageFailed):
    """A stage stopped because the whole budget ran out; `details` hold what it measured."""

    status = "timeout"


@dataclasses.dataclass
class Stage:
    name: str
    run: Callable[[float], dict]  # the seconds it may take (Budget.timeout) -> details for the JSON
    preset_seconds: float | None = None  # a stage run before this process (the build): its time


def run_stages(stages: list[Stage], budget: Budget, dry_run: bool, clock: Callable[[], float] = time.perf_counter):
    """Runs the stages in order, each once, whatever the others' outcome, and returns one record
    per stage: status (passed / dry-run / failed / timeout / skipped), seconds, its budget and
    whether it went over, the stage's details and the error."""
    missing = [s.name for s in stages if s.name not in budget.stages]
    if missing:
        raise ValueError(f"budget: no budget for stage(s) {missing}")
    records = []
    start = clock() - sum(s.preset_seconds or 0.0 for s in stages)
    for stage in stages:
        stage_budget = budget.stages[stage.name]
        elapsed = clock() - start
        left, timeout = budget.remaining(elapsed), budget.timeout(stage.name, elapsed)
        details, error = {}, None
        if stage.preset_seconds is not None:
            seconds = stage.preset_seconds
            details = stage.run(timeout)
            status = "passed"
        elif left <= 0:
            seconds, status = 0.0, "skipped"
            error = f"the whole budget of {budget.total:.0f} s was used up before this stage"
        else:
            print(f"[gpu_check] {stage.name}: start (budget {stage_budget:.0f} s, {left:.0f} s left)", flush=True)
            t0 = clock()
            try:
                details = stage.run(timeout)
                status = "dry-run" if dry_run else "passed"
            except subprocess.TimeoutExpired:
                status, error = "timeout", f"stopped after {timeout:.0f} s (Budget.timeout)"
            except StageFailed as e:
                status, error, details = e.status, str(e), e.details
            except Exception as e:  # a bug or an unexpected error: reported, the other stages still run
                status, error = "failed", f"{type(e).__name__}: {e}"
                details = {"traceback": traceback.format_exc(limit=8).splitlines()[-12:]}
            seconds = clock() - t0
        over = budget.over(stage.name, seconds)
        note = (f" -- OVER its budget of {stage_budget:.0f} s" if over else "") + (f": {error}" if error else "")
        print(f"[gpu_check] {stage.name}: {status} in {seconds:.1f} s{note}", flush=True)
        records.append(
            {
                "name": stage.name,
                "status": status,
                "seconds": seconds,
                "budget_seconds": stage_budget,
                "over_budget": over,
                "details": details,
                "error": error,
            }
        )
    return records


# -------------------------------------------------------------------------------------------
# report: one JSON and a table


def make_report(mode: str, stages: list[dict], budget: Budget, device: dict | None, machine: dict) -> dict:
    total = sum(s["seconds"] for s in stages)
    return {
        "schema": SCHEMA,
        "mode": mode,
        "device": device,
        "machine": machine,
        "budget_seconds": budget.total,
        "total_seconds": total,
        "within_budget": total <= budget.total,
        "ok": all(s["status"] in ("passed", "dry-run") for s in stages),
        "stages": stages,
    }


def stage_rows(report: dict) -> list[list[str]]:
    rows = []
    for s in report["stages"]:
        over = "OVER" if s["over_budget"] else "ok"
        rows.append([s["name"], s["status"], f"{s['seconds']:.1f} s", f"{s['budget_seconds']:.0f} s", over])
    status, verdict = "ok" if report["ok"] else "FAILED", "ok" if report["within_budget"] else "OVER"
    rows.append(["total", status, f"{report['total_seconds']:.1f} s", f"{report['budget_seconds']:.0f} s", verdict])
    return rows


def print_report(report: dict) -> None:
    from common import print_table

    bench = next((s for s in report["stages"] if s["name"] == "benchmarks"), None)
    if bench and bench["details"].get("results"):
        print_table(bench["details"]["title"], BENCH_COLUMNS, [bench_row(r) for r in bench["details"]["results"]])
    columns = ["stage", "status", "time", "budget", "budget check"]
    print_table(f"gpu_check ({report['mode']})", columns, stage_rows(report))
    for s in report["stages"]:
        if s["error"]:
            print(f"  {s['name']}: {s['error']}")


def write_report(report: dict, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(report, f, indent=2, default=str)
    print(f"\nwrote {path}")
    return path


# -------------------------------------------------------------------------------------------
# tests and sanitizer stages: pytest in subprocesses


def pytest_command() -> list[str]:
    """pytest of this python, not `python -m pytest`, which would put the checkout's root on
    sys.path and import the package's sources (no compiled extension) instead of the build."""
    script = os.path.join(os.path.dirname(sys.executable), "pytest")
    if os.path.exists(script):
        return [script]
    return [sys.executable, *(["-P"] if sys.version_info >= (3, 11) else []), "-m", "pytest"]  # -P: no cwd on sys.path


def repo_test_files(files=OP_TEST_FILES, name="OP_TEST_FILES") -> list[str]:
    """The test files as absolute paths, checked to exist (a renamed test file fails the stage)."""
    paths = [os.path.join(REPO_ROOT, f) for f in files]
    missing = [f for f, p in zip(files, paths) if not os.path.isfile(p)]
    if missing:
        raise StageFailed(f"test files not found: {missing} (update {name})")
    return paths


def _run_logged(cmd, env, log_path, timeout):
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "w") as log:
        return subprocess.run(cmd, env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, timeout=timeout)


def _summary(log_path: str) -> str:
    """pytest's last line ("12 passed, 1 failed in 3.0s"), or the log's last line."""
    with open(log_path, errors="replace") as f:
        lines = [line.strip() for line in f if line.strip()]
    for line in reversed(lines):
        if re.search(r"\b(passed|failed|error|errors|deselected|no tests ran)\b", line):
            return line.strip("= ")
    return lines[-1] if lines else "(no output)"


def _test_env(backends: str, **extra) -> dict:
    return {**os.environ, "BATCHGAN_TEST_BACKENDS": backends, **extra}


def collect(files: list[str], backends: str, keyword: str | None = None) -> tuple[list[str], set[str]]:
    """The test ids pytest selects from `files` with BATCHGAN_TEST_BACKENDS=backends (and -k
    keyword), and those of them marked emulated_only: the selection a GPU run hands to pytest,
    collected in this process (a pytest subprocess would spend most of its time importing torch)."""
    import contextlib
    import io

    import pytest

    class Selected:
        ids: list[str] = []
        emulated_only: set[str] = set()

        def pytest_collection_finish(self, session):
            self.ids = [item.nodeid for item in session.items]
            self.emulated_only = {item.nodeid for item in session.items if item.get_closest_marker("emulated_only")}

    selected, output = Selected(), io.StringIO()
    args = ["--collect-only", "-q", "-p", "no:cacheprovider", "--rootdir", REPO_ROOT, *files]
    args += ["-k", keyword] if keyword else []
    previous = os.environ.get("BATCHGAN_TEST_BACKENDS")
    os.environ["BATCHGAN_TEST_BACKENDS"] = backends
    try:
        with contextlib.redirect_stdout(output):
            code = pytest.main(args, plugins=[selected])
    finally:
        if previous is None:
            del os.environ["BATCHGAN_TEST_BACKENDS"]
        else:
            os.environ["BATCHGAN_TEST_BACKENDS"] = previous
    if code != 0:
        text = output.getvalue()[-3000:]
        raise StageFailed(f"pytest --collect-only failed ({code}): {text.strip().splitlines()[-1:]}", {"output": text})
    return selected.ids, selected.emulated_only


def tests_stage(dry_run: bool, log_dir: str):
    def run(timeout: float) -> dict:
        if dry_run:
            # The selection the GPU run makes, collected here: the cuda backend reaches the kernel
            # tests and stays away from the ones marked emulated_only (invalid values).
            files = repo_test_files() + repo_test_files(INVALID_VALUE_TEST_FILES, "INVALID_VALUE_TEST_FILES")
            ids, emulated_only = collect(files, "emulated,cuda")
            cuda = [i for i in ids if re.search(r"[\[-]cuda[\]-]", i)]
            # marked, or known to pass invalid values (a lost marker)
            leaked = [i for i in cuda if i in emulated_only or "test_fuzz" in i or "reject_bad_values" in i]
            if not cuda:
                raise StageFailed("BATCHGAN_TEST_BACKENDS=emulated,cuda added no cuda test (conftest.py)")
            if leaked:
                raise StageFailed(f"emulated_only tests got the cuda backend: {leaked[:3]}")
            return {
                "collected": len(ids),
                "cuda_tests": len(cuda),
                "emulated_only_tests": len(emulated_only),
                "would_run": "pytest python_tests (BATCHGAN_TEST_BACKENDS=emulated,cuda)",
            }
        log = os.path.join(log_dir, "tests.log")
        cmd = pytest_command() + ["python_tests", "-q", "-p", "no:cacheprovider"]
        result = _run_logged(cmd, _test_env("emulated,cuda"), log, timeout=timeout)
        details = {"command": " ".join(cmd), "log": log, "summary": _summary(log), "returncode": result.returncode}
        if result.returncode != 0:
            raise StageFailed(f"tests failed: {details['summary']} (log: {log})", details)
        return details

    return Stage("tests", run)


def find_compute_sanitizer() -> str | None:
    candidates = [shutil.which("compute-sanitizer")]
    for root in (os.environ.get("CUDA_HOME"), "/usr/local/cuda"):
        if root:
            candidates.append(os.path.join(root, "bin", "compute-sanitizer"))
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.append(os.path.join(os.path.dirname(os.path.realpath(nvcc)), "compute-sanitizer"))
    return next((c for c in candidates if c and os.path.isfile(c) and os.access(c, os.X_OK)), None)


def sanitizer_command(sanitizer: str, tool: str, test_files: list[str]) -> list[str]:
    if tool not in SANITIZER_TOOLS:
        raise ValueError(f"tool: expected one of {SANITIZER_TOOLS}, got {tool!r}")
    return [
        sanitizer,
        "--tool",
        tool,
        "--error-exitcode",
        "1",
        "--kernel-name",
        SANITIZER_KERNEL_FILTER,
        "--print-limit",
        "20",
        *pytest_command(),
        "-q",
        "-p",
        "no:cacheprovider",
        "-k",
        "cuda",
        *test_files,
    ]


# Without the caching allocator every tensor is its own allocation, so that memcheck sees an
# access past a tensor's end instead of it landing in the rest of a cached block.
SANITIZER_ENV = {"PYTORCH_NO_CUDA_MEMORY_CACHING": "1"}


def sanitizer_stage(dry_run: bool, log_dir: str):
    def run(timeout: float) -> dict:
        files = repo_test_files()
        sanitizer = find_compute_sanitizer()
        commands = {tool: sanitizer_command(sanitizer or "compute-sanitizer", tool, files) for tool in SANITIZER_TOOLS}
        if dry_run:
            ids, _ = collect(files, "cuda", "cuda")
            per_file = {f: sum(i.startswith(f) for i in ids) for f in OP_TEST_FILES}
            empty = [f for f, n in per_file.items() if n == 0]
            if empty:
                raise StageFailed(f"no cuda test selected in {empty}", {"per_file": per_file})
            return {
                "compute_sanitizer": sanitizer,
                "tools": list(SANITIZER_TOOLS),
                "cuda_tests_per_file": per_file,
                "commands": {t: " ".join(c) for t, c in commands.items()},
            }
        if sanitizer is None:
            raise StageFailed("compute-sanitizer not found (PATH, $CUDA_HOME/bin, /usr/local/cuda/bin, next to nvcc)")
        # The four tools at once, each in its own process: the GPU and the host have room for them,
        # and one after another they would not fit the budget.
        env = _test_env("cuda", **SANITIZER_ENV)
        os.makedirs(log_dir, exist_ok=True)
        procs, logs = {}, {}
        for tool, cmd in commands.items():
            logs[tool] = os.path.join(log_dir, f"sanitizer-{tool}.log")
            log = open(logs[tool], "w")
            procs[tool] = (subprocess.Popen(cmd, env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT), log)
        deadline = time.monotonic() + timeout
        results = {}
        try:
            for tool, (proc, log) in procs.items():
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                log.close()
                results[tool] = {"returncode": proc.returncode, "summary": _summary(logs[tool]), "log": logs[tool]}
        finally:
            for proc, log in procs.values():
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                log.close()
        details = {"compute_sanitizer": sanitizer, "results": results}
        failed = [t for t, r in results.items() if r["returncode"] != 0]
        if failed:
            raise StageFailed(f"compute-sanitizer reported errors: {failed} (logs in {log_dir})", details)
        return details

    return Stage("sanitizer", run)


# -------------------------------------------------------------------------------------------
# graph stage: one M-BGAN training step, eager, sync-checked, captured


@dataclasses.dataclass
class StepParts:
    """What one M-BGAN training step updates: the training layer's loss and networks, optimisers
    built capturable (their step counters on the device), and a source of real batches."""

    gan: object
    generator: object
    discriminator: object
    opt_g: object
    opt_d: object
    latent_dim: int
    real_batch: Callable[[], object]


def _adam(parameters, lr, betas, device):
    import torch

    return torch.optim.Adam(parameters, lr=lr, betas=betas, capturable=device.type == "cuda")


def mbgan_2d_parts(device, small: bool) -> StepParts:
    """The 2D experiment's M-BGAN as the Trainer builds it (grid25, its networks and GANLoss)."""
    import torch

    from batchgan_ext.train.trainer import TrainConfig, Trainer

    config = TrainConfig(dataset="grid25", method="mbgan")
    if small:
        config = dataclasses.replace(config, batch_size=16, set_size=4, hidden=16)
    trainer = Trainer(config, device=device)
    betas = (config.beta1, config.beta2)
    data_rng = torch.Generator().manual_seed(1)
    return StepParts(
        trainer.loss,
        trainer.generator,
        trainer.discriminator,
        _adam(trainer.generator.parameters(), config.lr, betas, device),
        _adam(trainer.discriminator.parameters(), config.lr, betas, device),
        config.latent_dim,
        lambda: trainer.dataset.sample(config.batch_size, data_rng, device=device),
    )


def mbgan_image_parts(device, small: bool) -> StepParts:
    """M-BGAN on 3x32x32 images: SN-GAN's D made equivariant by GANLoss, DCGAN's G (the image
    networks of the training layer), on random images (the data does not matter to the check)."""
    import torch

    from batchgan_ext.train.image_networks import make_image_discriminator, make_image_generator
    from batchgan_ext.train.objectives import GANLoss

    width, batch, set_size, latent = (4, 8, 4, 8) if small else (64, 64, 16, 128)
    gan = GANLoss("mbgan", set_size=set_size)
    torch.manual_seed(0)
    discriminator = gan.convert_discriminator(make_image_discriminator(3, width)).to(device)
    generator = make_image_generator(latent, 3, width).to(device)
    betas = (0.5, 0.999)
    return StepParts(
        gan,
        generator,
        discriminator,
        _adam(generator.parameters(), 2e-4, betas, device),
        _adam(discriminator.parameters(), 2e-4, betas, device),
        latent,
        lambda: torch.rand(batch, 3, 32, 32, device=device) * 2 - 1,
    )


def mbgan_training_step(parts: StepParts, real):
    """One discriminator and one generator update of M-BGAN, with no host read: the noise and the
    mixing are drawn on real's device (GANLoss with generator=None), the losses stay tensors. On a
    GPU this is the function captured in the CUDA graph; the dry run runs it eagerly on the CPU."""
    import torch

    noise = torch.randn(real.shape[0], parts.latent_dim, device=real.device)
    fake = parts.generator(noise)
    loss_d = parts.gan.discriminator_loss(parts.discriminator, real, fake.detach())
    parts.opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    parts.opt_d.step()
    loss_g = parts.gan.generator_loss(parts.discriminator, real, fake)
    parts.opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    parts.opt_g.step()
    return loss_d.detach(), loss_g.detach()


def _parameters(parts: StepParts):
    return [*parts.generator.parameters(), *parts.discriminator.parameters()]


def _check_updates(name, before, parts, losses):
    bad = [pair for pair in losses if not all(math.isfinite(v) for v in pair)]
    if bad:
        raise StageFailed(f"{name}: non-finite losses {bad[:3]}")
    changed = sum(not b.equal(p.detach()) for b, p in zip(before, _parameters(parts)))
    if changed == 0:
        raise StageFailed(f"{name}: no parameter changed over {len(losses)} steps")
    return changed


def eager_steps(name: str, parts: StepParts, steps: int) -> dict:
    from common import wall_clock

    before = [p.detach().clone() for p in _parameters(parts)]
    losses, seconds = [], []
    for _ in range(steps):
        real = parts.real_batch()
        out = []
        seconds.append(wall_clock(lambda: out.extend(mbgan_training_step(parts, real))))
        losses.append([float(v) for v in out])
    changed = _check_updates(name, before, parts, losses)
    return {"eager_step_seconds": statistics.median(seconds), "losses": losses, "parameters_changed": changed}


def captured_steps(name: str, parts: StepParts, replays: int) -> dict:
    """Warm-up, one step under sync debug mode "error", capture, replays (each on a fresh real
    batch copied into the graph's input), and the eager and replayed step times (CUDA events)."""
    import torch

    from common import cuda_event_clock

    static_real = parts.real_batch().clone()
    # Warm-up on a side stream, as torch.cuda.graphs requires: lazy initialisation (cuBLAS/cuDNN
    # handles, Adam's state) happens before the capture.
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            mbgan_training_step(parts, static_real)
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    # Deliverable 1's runtime check: a host sync anywhere in the step raises here.
    torch.cuda.set_sync_debug_mode("error")
    try:
        mbgan_training_step(parts, static_real)
    except RuntimeError as e:
        raise StageFailed(f"{name}: the step synchronises with the host: {e}") from e
    finally:
        torch.cuda.set_sync_debug_mode("default")
    eager = statistics.median(cuda_event_clock(lambda: mbgan_training_step(parts, static_real)) for _ in range(5))
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_losses = mbgan_training_step(parts, static_real)
    before = [p.detach().clone() for p in _parameters(parts)]
    losses, replay_seconds = [], []
    for _ in range(replays):
        static_real.copy_(parts.real_batch())
        replay_seconds.append(cuda_event_clock(graph.replay))
        losses.append([float(v) for v in static_losses])
    changed = _check_updates(name, before, parts, losses)
    if len({tuple(pair) for pair in losses}) == 1:
        raise StageFailed(f"{name}: every replay gave the same losses: the graph's draws do not advance")
    return {
        "sync_debug_mode_error": "no host sync",
        "eager_step_seconds": eager,
        "replay_step_seconds": statistics.median(replay_seconds),
        "losses": losses,
        "parameters_changed": changed,
    }


def graph_stage(dry_run: bool):
    def run(timeout: float) -> dict:
        import torch

        device = torch.device("cpu" if dry_run else "cuda")
        details = {}
        for name, build in (("mbgan_2d", mbgan_2d_parts), ("mbgan_image", mbgan_image_parts)):
            parts = build(device, small=dry_run)
            if dry_run:
                details[name] = eager_steps(name, parts, steps=2)
                details[name]["capture"] = "needs CUDA: the step ran eagerly on the CPU"
            else:
                details[name] = captured_steps(name, parts, replays=10)
        return details

    return Stage("graph", run)


# -------------------------------------------------------------------------------------------
# benchmarks stage: the bench_*.py candidates on a device, fp32 and bf16


BENCH_COLUMNS = ["op", "case", "dtype", "ours", "naive", "compiled", "naive/ours", "compiled/ours"]


def _bench_modules():
    if HERE not in sys.path:
        sys.path.insert(0, HERE)
    import bench_bernoulli_kl_loss
    import bench_equivariant
    import bench_minibatch_stddev
    import bench_mix
    import bench_pairwise_l1_features

    return bench_mix, bench_bernoulli_kl_loss, bench_equivariant, bench_minibatch_stddev, bench_pairwise_l1_features


def bench_cases(small: bool) -> list[tuple[str, str, Callable]]:
    """(op, case, make(device, dtype, compile_fn) -> {candidate: fn}) with the shapes of the CPU
    benchmarks (one or two per op, to fit the budget; tiny ones for the dry run) and their
    candidates: ours (the package), naive (its reference in PyTorch), compiled (compile_fn of naive)."""
    import torch

    import batchgan_ext as bg
    from batchgan_ext._reference.equivariant import equivariant_conv2d_naive, equivariant_linear_naive
    from batchgan_ext._reference.minibatch import minibatch_stddev_reference, pairwise_l1_features_reference
    from batchgan_ext._reference.mixing import bernoulli_kl_loss_reference

    mix, kl, eq, mbstd, pairwise = _bench_modules()

    def mix_case(shape):
        def make(device, dtype, compile_fn):
            real, fake, beta, grad = mix._make_inputs(shape, device, dtype)
            forward = {"naive": mix._naive_forward, "compiled": compile_fn(mix._naive_forward)}

            def ours():
                real.grad = fake.grad = None
                mix._batchgan_step(real, fake, beta, grad)

            def reference(f):
                def run():
                    real.grad = fake.grad = None
                    mix._naive_step(f, real, fake, beta, grad)

                return run

            return {"ours": ours, **{name: reference(f) for name, f in forward.items()}}

        return "mix", "B={}, {}x{}x{}".format(*shape), make

    def kl_case(n, num_sets, mode):
        def make(device, dtype, compile_fn):
            logits = torch.randn(n, device=device).to(dtype).requires_grad_(True)
            target = torch.rand(num_sets, device=device)
            forward = {"ours": bg.bernoulli_kl_loss, "naive": bernoulli_kl_loss_reference}
            forward["compiled"] = compile_fn(bernoulli_kl_loss_reference)

            def step(f):
                def run():
                    logits.grad = None
                    f(logits, target, mode, num_sets).backward()

                return run

            return {name: step(f) for name, f in forward.items()}

        return "bernoulli_kl_loss", f"N={n}, {num_sets} sets, {mode}", make

    def equivariant_case(kind, label, batch, c_in, c_out, kernel=None, stride=None, size=None, num_sets=4):
        def make(device, dtype, compile_fn):
            gen = torch.Generator().manual_seed(0)
            if kind == "conv":
                x = torch.randn(batch, c_in, size, size, generator=gen)
                w_shape, conv_kw = (c_out, c_in, kernel, kernel), dict(stride=stride, padding=1)
                scale = 1 / math.sqrt(c_in * kernel * kernel)
            else:
                x = torch.randn(batch, c_in, generator=gen)
                w_shape, conv_kw, scale = (c_out, c_in), {}, 1 / math.sqrt(c_in)
            w, wg = (torch.randn(w_shape, generator=gen) * scale for _ in range(2))
            x, w, wg, b = (t.to(device, dtype).requires_grad_(True) for t in (x, w, wg, torch.zeros(c_out)))
            fns = eq._candidates(kind, x, w, wg, b, num_sets, conv_kw, compile_naive=False)
            naive_forward = equivariant_conv2d_naive if kind == "conv" else equivariant_linear_naive

            def naive(x, w, wg, b):
                kw = dict(num_sets=num_sets, activation="leaky_relu", negative_slope=eq.SLOPE)
                return naive_forward(x, w, wg, b, **kw, **conv_kw)

            grad = torch.randn_like(naive(x, w, wg, b))
            compiled = eq._fwd_bwd(compile_fn(naive), (x, w, wg, b), grad)
            return {"ours": fns["fused"], "naive": fns["naive"], "compiled": compiled}

        return "equivariant", label, make

    def mbstd_case(shape):
        def make(device, dtype, compile_fn):
            x = torch.randn(shape, device=device).to(dtype).requires_grad_(True)
            w = torch.randn(shape[0], shape[1] + 1, *shape[2:], device=device).to(dtype)
            forward = {"ours": bg.minibatch_stddev, "naive": minibatch_stddev_reference}
            forward["compiled"] = compile_fn(minibatch_stddev_reference)
            return {name: mbstd._fwd_bwd(f, x, w) for name, f in forward.items()}

        return "minibatch_stddev", "x".join(map(str, shape)), make

    def pairwise_case(n, b, c):
        def make(device, dtype, compile_fn):
            M = (0.3 * torch.randn(n, b, c, device=device)).to(dtype).requires_grad_()
            w = torch.randn(n, b, device=device).to(dtype)
            forward = {"ours": bg.pairwise_l1_features}
            # The N x N x B x C reference is skipped where that tensor alone is too large.
            if 4 * n * n * b * c <= pairwise.NAIVE_LIMIT_BYTES:
                forward["naive"] = pairwise_l1_features_reference
                forward["compiled"] = compile_fn(pairwise_l1_features_reference)
            return {name: pairwise._fwd_bwd(f, M, w) for name, f in forward.items()}

        return "pairwise_l1_features", f"N={n}, (B,C)=({b},{c})", make

    if small:
        return [
            mix_case((4, 3, 8, 8)),
            kl_case(32, 4, "mbgan"),
            equivariant_case("conv", "conv 3x3 8x3x8x8 -> 4", 8, 3, 4, 3, 1, 8),
            equivariant_case("linear", "linear 16x8 -> 8", 16, 8, 8),
            mbstd_case((8, 8, 4, 4)),
            pairwise_case(16, 8, 4),
        ]
    # SN-GAN's conv2 (4x4, stride 2, 64 channels at 32x32) and the 2D experiment's 256 x 512 -> 512
    conv, c_in, c_out, kernel, stride, size = next(layer for layer in eq.CONV_LAYERS if layer[0].startswith("conv2"))
    linear_name, f_in, f_out, linear_batch = eq.LINEAR_LAYERS[-1]
    return [
        mix_case(mix.SHAPES[-1]),
        *(kl_case(*kl.CASES[-1], mode) for mode in kl.MODES),
        equivariant_case("conv", f"{conv} 64x{c_in}x{size}x{size} -> {c_out}", 64, c_in, c_out, kernel, stride, size),
        equivariant_case("linear", f"{linear_name} {linear_batch}x{f_in} -> {f_out}", linear_batch, f_in, f_out),
        mbstd_case(mbstd.SHAPES[-1]),
        pairwise_case(256, *pairwise.KERNEL_SHAPES[0]),
        pairwise_case(4096, *pairwise.KERNEL_SHAPES[1]),
    ]


def bench_row(record: dict) -> list[str]:
    from common import format_time

    if record["error"]:
        return [record["op"], record["case"], record["dtype"], f"FAILED: {record['error']}", "", "", "", ""]
    t = record["seconds"]
    ratio = lambda k: f"{t[k] / t['ours']:.2f}x" if t.get(k) and t.get("ours") else "-"  # noqa: E731
    times = [format_time(t.get(k)) for k in ("ours", "naive", "compiled")]
    return [record["op"], record["case"], record["dtype"], *times, ratio("naive"), ratio("compiled")]


def run_benchmarks(cases, device, dtypes, compile_fn, clock, warmup: int, rounds: int, deadline: float) -> list[dict]:
    """Every case in every dtype: its candidates timed round-robin (common.time_interleaved) with
    `clock`; the first calls (compilation) run before the timed rounds. A case whose candidate
    raises is recorded with the error, and the others still run."""
    from common import time_interleaved

    records = []
    for op, case, make in cases:
        for dtype in dtypes:
            if time.monotonic() > deadline:
                raise OutOfTime(f"the whole budget ran out after {len(records)} case(s)", {"results": records})
            record = {"op": op, "case": case, "dtype": str(dtype).replace("torch.", ""), "seconds": {}, "error": None}
            try:
                fns = make(device, dtype, compile_fn)
                for fn in fns.values():
                    fn()  # compiles the compiled candidate, outside the timed rounds
                record["seconds"] = time_interleaved(fns, warmup=warmup, rounds=rounds, clock=clock)
            except Exception as e:  # reported in the table and the JSON
                record["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
            records.append(record)
    return records


def benchmarks_stage(dry_run: bool, with_compile: bool = True):
    def run(timeout: float) -> dict:
        import torch

        from common import cuda_event_clock, wall_clock

        torch.manual_seed(0)
        device = torch.device("cpu" if dry_run else "cuda")
        # The dry run goes through torch.compile with dynamo's eager backend: the same tracing,
        # none of inductor's code generation (minutes on this CPU).
        backend = "eager" if dry_run else "inductor"

        def compile_fn(fn):
            return torch.compile(fn, backend=backend) if with_compile else fn

        warmup, rounds = (1, 3) if dry_run else (5, 25)
        deadline = time.monotonic() + timeout
        cases = bench_cases(small=dry_run)
        clock = wall_clock if dry_run else cuda_event_clock
        dtypes = (torch.float32, torch.bfloat16)
        records = run_benchmarks(cases, device, dtypes, compile_fn, clock, warmup, rounds, deadline)
        if not with_compile:
            for r in records:
                r["seconds"].pop("compiled", None)
        clock_name = "wall clock (dry run, CPU)" if dry_run else "CUDA events"
        details = {
            "title": f"kernels forward + backward on {device.type}, medians of {rounds} rounds, {clock_name}",
            "clock": clock_name,
            "compile_backend": backend if with_compile else None,
            "rounds": rounds,
            "results": records,
        }
        errors = [f"{r['op']} {r['case']} {r['dtype']}: {r['error']}" for r in records if r["error"]]
        if errors:
            raise StageFailed(f"{len(errors)} benchmark case(s) failed: {errors[0]}", details)
        return details

    return Stage("benchmarks", run)


# -------------------------------------------------------------------------------------------
# main


def build_stage(dry_run: bool, build_seconds: float | None, capabilities):
    def run(timeout: float) -> dict:
        would_run = "TORCH_CUDA_ARCH_LIST=<arch list> BATCHGAN_FORCE_CUDA=1 source .ci/setup_env.sh"
        if dry_run:
            # The arch detection on made-up GPUs (this machine has none to ask).
            examples = {"H100": [(9, 0)], "A100 + RTX 3090": [(8, 0), (8, 6)], "2 x L4": [(8, 9), (8, 9)]}
            return {"would_run": would_run, "arch_list_examples": {k: arch_list(v) for k, v in examples.items()}}
        if build_seconds is None:
            return {"note": "built before this run, not by gpu_check.sh", "arch_list": arch_list(capabilities)}
        return {"ran": would_run, "arch_list": arch_list(capabilities)}

    return Stage("build", run, preset_seconds=None if dry_run else (build_seconds or 0.0))


def device_info() -> dict:
    import torch

    import batchgan_ext

    index = torch.cuda.current_device()
    return {
        "name": torch.cuda.get_device_name(index),
        "capability": list(torch.cuda.get_device_capability(index)),
        "count": torch.cuda.device_count(),
        "cuda": torch.version.cuda,
        "build_info": batchgan_ext.build_info(),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="the CPU-side logic of every stage, tiny sizes, no GPU")
    parser.add_argument("--arch-list", action="store_true", help="print TORCH_CUDA_ARCH_LIST for the GPUs found")
    parser.add_argument("--build-seconds", type=float, default=None, help="(gpu_check.sh) the build stage's time")
    parser.add_argument("--out", default=DEFAULT_OUT, help="the JSON report (default: %(default)s)")
    parser.add_argument("--budget-scale", type=float, default=1.0, help="multiply every stage's budget (slower GPUs)")
    parser.add_argument("--no-compile", action="store_true", help="benchmarks without the torch.compile candidate")
    parser.add_argument("--only", default="", help="comma-separated stages to run (default: all)")
    args = parser.parse_args(argv)

    if not args.dry_run:
        capabilities = detect_capabilities()
        if not capabilities:
            print(NO_GPU_MESSAGE, file=sys.stderr)
            return NO_GPU_EXIT_CODE
        if args.arch_list:
            print(arch_list(capabilities))
            return 0
    elif args.arch_list:
        parser.error("--arch-list: asks the GPU; not with --dry-run")

    import torch

    from common import machine_info

    if args.dry_run:
        torch.set_num_threads(1)  # tiny sizes on a shared CPU
    budget = Budget(DRY_RUN_BUDGETS if args.dry_run else STAGE_BUDGETS).scaled(args.budget_scale)
    log_dir = os.path.join(os.path.dirname(os.path.abspath(args.out)), "gpu_check_logs")
    stages = [
        build_stage(args.dry_run, args.build_seconds, None if args.dry_run else capabilities),
        tests_stage(args.dry_run, log_dir),
        sanitizer_stage(args.dry_run, log_dir),
        graph_stage(args.dry_run),
        benchmarks_stage(args.dry_run, with_compile=not args.no_compile),
    ]
    if args.only:
        wanted = args.only.split(",")
        unknown = sorted(set(wanted) - {s.name for s in stages})
        if unknown:
            parser.error(f"--only: unknown stage(s) {unknown}; have {[s.name for s in stages]}")
        stages = [s for s in stages if s.name in wanted]
    if not args.dry_run:
        import batchgan_ext

        if "cuda" not in batchgan_ext.build_info().get("backends", []):
            built = batchgan_ext.build_info()
            print(f"gpu_check: batchgan_ext has no CUDA kernels ({built}); gpu_check.sh builds them", file=sys.stderr)
            return 1
    mode = "dry-run" if args.dry_run else "gpu"
    print(f"[gpu_check] {mode}: stages {[s.name for s in stages]}, budget {budget.total:.0f} s", flush=True)
    records = run_stages(stages, budget, args.dry_run)
    report = make_report(mode, records, budget, None if args.dry_run else device_info(), machine_info())
    print_report(report)
    write_report(report, args.out)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
