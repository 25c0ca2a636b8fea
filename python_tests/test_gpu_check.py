"""benchmarks/gpu_check.sh (issue 14, deliverable 7) without a GPU: its dry run end to end (every
stage's CPU-side logic, the JSON and the table), its refusal on a CPU-only machine, and the pure
parts it relies on on a GPU (arch detection, budget, stage runner, the cuda test backend's copies)."""

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from conftest import moved_tensors, parse_test_backends

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO_ROOT, "benchmarks", "gpu_check.sh")
sys.path.insert(0, os.path.join(REPO_ROOT, "benchmarks"))

import gpu_check  # noqa: E402  (benchmarks/ is not a package)

STAGES = ["build", "tests", "sanitizer", "graph", "benchmarks"]


def _run_script(*args, **env):
    # PY: this python, which imports the package under test; no GPU whatever the machine has.
    full_env = {**os.environ, "PY": sys.executable, "CUDA_VISIBLE_DEVICES": "", **env}
    return subprocess.run(["bash", SCRIPT, *args], env=full_env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check") / "gpu_check.json"
    proc = _run_script("--dry-run", "--out", str(out))
    assert proc.returncode == 0, f"dry run failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    with open(out) as f:
        return proc, json.load(f)


def test_dry_run_writes_every_stage_marked_dry_run(dry_run):
    proc, report = dry_run
    assert report["schema"] == gpu_check.SCHEMA and report["mode"] == "dry-run" and report["ok"] is True
    assert [s["name"] for s in report["stages"]] == STAGES
    for stage in report["stages"]:
        assert stage["status"] == "dry-run", stage
        assert stage["seconds"] > 0 and stage["budget_seconds"] == gpu_check.DRY_RUN_BUDGETS[stage["name"]]
        assert stage["over_budget"] == (stage["seconds"] > stage["budget_seconds"])
        # each stage's time is printed as it ends
        assert f"[gpu_check] {stage['name']}: dry-run in {stage['seconds']:.1f} s" in proc.stdout
    assert math.isclose(report["total_seconds"], sum(s["seconds"] for s in report["stages"]))
    assert report["budget_seconds"] == sum(gpu_check.DRY_RUN_BUDGETS.values())
    # the tables: the benchmarks' and the stages'
    assert "## gpu_check (dry-run)" in proc.stdout and "## kernels forward + backward on cpu" in proc.stdout
    for name in STAGES + ["total"]:
        assert any(line.startswith(name + " ") for line in proc.stdout.splitlines()), name


def test_dry_run_stage_details(dry_run):
    stages = {s["name"]: s["details"] for s in dry_run[1]["stages"]}
    assert stages["build"]["arch_list_examples"] == {"H100": "9.0", "A100 + RTX 3090": "8.0;8.6", "2 x L4": "8.9"}
    # the cuda backend reaches tests in every op test file, and compute-sanitizer gets all four tools
    assert stages["tests"]["cuda_tests"] > 0 and stages["tests"]["emulated_only_tests"] > 0
    assert set(stages["sanitizer"]["cuda_tests_per_file"]) == set(gpu_check.OP_TEST_FILES)
    assert all(n > 0 for n in stages["sanitizer"]["cuda_tests_per_file"].values())
    assert set(stages["sanitizer"]["commands"]) == set(gpu_check.SANITIZER_TOOLS)
    for tool, command in stages["sanitizer"]["commands"].items():
        assert f"--tool {tool}" in command and "-k cuda" in command
    # the training step ran on the CPU and trained
    for name in ("mbgan_2d", "mbgan_image"):
        graph = stages["graph"][name]
        assert len(graph["losses"]) == 2 and all(math.isfinite(v) for pair in graph["losses"] for v in pair)
        assert graph["parameters_changed"] > 0 and graph["eager_step_seconds"] > 0
    # every op, both dtypes, all three candidates timed
    results = stages["benchmarks"]["results"]
    ops = {"mix", "bernoulli_kl_loss", "equivariant", "minibatch_stddev", "pairwise_l1_features"}
    assert {r["op"] for r in results} == ops
    assert {(r["op"], r["dtype"]) for r in results} == {(op, d) for op in ops for d in ("float32", "bfloat16")}
    for r in results:
        assert r["error"] is None and set(r["seconds"]) == {"ours", "naive", "compiled"}, r
        assert all(t > 0 for t in r["seconds"].values()), r


def test_cpu_only_machine_is_refused_before_building(tmp_path):
    out = tmp_path / "gpu_check.json"
    proc = _run_script("--out", str(out))
    assert proc.returncode == gpu_check.NO_GPU_EXIT_CODE == 2, proc.stdout + proc.stderr
    assert "no CUDA device found" in proc.stderr and "bash benchmarks/gpu_check.sh --dry-run" in proc.stderr
    assert "compute-sanitizer" in proc.stderr  # says what it would do
    assert "build:" not in proc.stdout and "[setup]" not in proc.stdout and not out.exists()


def test_arch_list_from_capabilities():
    assert gpu_check.arch_list([(9, 0)]) == "9.0"
    assert gpu_check.arch_list([(9, 0), (8, 6), (9, 0)]) == "8.6;9.0"
    assert gpu_check.arch_list([(10, 0), (9, 0)]) == "9.0;10.0"  # by number, not as text
    assert gpu_check.arch_list(iter([[12, 1]])) == "12.1"
    for bad in ([], [(9,)], [("9", "0")], [(True, 0)], [(0, 0)], [(9, -1)], [9.0]):
        with pytest.raises(ValueError, match="capabilities"):
            gpu_check.arch_list(bad)


def test_nvidia_smi_capabilities():
    assert gpu_check.parse_nvidia_smi_capabilities("9.0\n 8.6 \n") == [(9, 0), (8, 6)]
    assert gpu_check.parse_nvidia_smi_capabilities("No devices were found\n") == []


def test_budget():
    budget = gpu_check.Budget({"a": 10.0, "b": 5})
    assert budget.total == 15.0 and budget.remaining(4.0) == 11.0 and budget.remaining(20.0) == 0.0
    assert budget.over("a", 10.5) and not budget.over("a", 10.0)
    assert budget.scaled(2.0).stages == {"a": 20.0, "b": 10.0}
    # a stage may overrun its budget, up to twice it, within what is left of the whole
    assert budget.timeout("b", 0.0) == 10.0 and budget.timeout("a", 0.0) == 15.0 and budget.timeout("a", 9.0) == 6.0
    assert gpu_check.Budget(gpu_check.STAGE_BUDGETS).total == 8 * 60  # the deliverable's 8 minutes
    for bad in ({}, {"a": 0}, {"a": -1.0}, {"a": "5"}, {"a": True}):
        with pytest.raises(ValueError, match="stage"):
            gpu_check.Budget(bad)
    with pytest.raises(ValueError, match="scale"):
        budget.scaled(0)


class _FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def _stage(clock, name, seconds, error=None, preset=None):
    def run(timeout):
        clock.now += seconds
        if error is not None:
            raise error
        return {"timeout": timeout}

    return gpu_check.Stage(name, run, preset_seconds=preset)


def test_stage_runner_times_reports_and_enforces_the_budget(capsys):
    clock = _FakeClock()
    budget = gpu_check.Budget({"build": 4.0, "a": 3.0, "b": 2.0, "c": 2.0, "d": 1.0})  # 12 s in all
    stages = [
        gpu_check.Stage("build", lambda timeout: {"timeout": timeout}, preset_seconds=5.0),  # ran before: over 4 s
        _stage(clock, "a", 2.0),
        _stage(clock, "b", 1.0, error=gpu_check.StageFailed("b broke", {"why": "test"})),
        _stage(clock, "c", 5.0, error=RuntimeError("c crashed")),  # uses up the rest of the budget
        _stage(clock, "d", 1.0),
    ]
    records = {r["name"]: r for r in gpu_check.run_stages(stages, budget, dry_run=False, clock=clock)}
    assert records["build"]["status"] == "passed" and records["build"]["seconds"] == 5.0
    assert records["build"]["over_budget"] and records["build"]["details"] == {"timeout": 7.0}  # 12 - 5 left
    assert records["a"]["status"] == "passed" and records["a"]["seconds"] == 2.0 and not records["a"]["over_budget"]
    assert records["a"]["details"] == {"timeout": 6.0}  # twice its budget, less than the 7 s left
    assert records["b"]["status"] == "failed" and records["b"]["error"] == "b broke"
    assert records["b"]["details"] == {"why": "test"}
    assert records["c"]["status"] == "failed" and "RuntimeError: c crashed" in records["c"]["error"]
    assert records["c"]["over_budget"]
    assert records["d"]["status"] == "skipped" and records["d"]["seconds"] == 0.0  # 5 + 2 + 1 + 5 > 12
    printed = capsys.readouterr().out
    assert "[gpu_check] a: passed in 2.0 s" in printed and "OVER its budget of 2 s" in printed

    report = gpu_check.make_report("gpu", list(records.values()), budget, None, {})
    assert report["ok"] is False and report["total_seconds"] == 13.0 and report["within_budget"] is False
    assert gpu_check.stage_rows(report)[-1] == ["total", "FAILED", "13.0 s", "12 s", "OVER"]


def test_stage_runner_marks_a_dry_run_and_rejects_stages_without_budget():
    clock = _FakeClock()
    records = gpu_check.run_stages([_stage(clock, "a", 1.0)], gpu_check.Budget({"a": 2.0}), dry_run=True, clock=clock)
    assert records[0]["status"] == "dry-run"
    with pytest.raises(ValueError, match="no budget for stage"):
        gpu_check.run_stages([_stage(clock, "x", 1.0)], gpu_check.Budget({"a": 2.0}), dry_run=True, clock=clock)


def test_sanitizer_command():
    cmd = gpu_check.sanitizer_command("/cuda/bin/compute-sanitizer", "racecheck", ["t.py"])
    assert cmd[:3] == ["/cuda/bin/compute-sanitizer", "--tool", "racecheck"] and cmd[-1] == "t.py"
    assert cmd[cmd.index("--kernel-name") + 1] == gpu_check.SANITIZER_KERNEL_FILTER
    with pytest.raises(ValueError, match="tool"):
        gpu_check.sanitizer_command("cs", "leakcheck", [])


def test_cuda_test_backend_selection_and_copies():
    assert parse_test_backends("emulated, cuda") == ["emulated", "cuda"]
    for bad in ("gpu", "", ","):
        with pytest.raises(pytest.UsageError, match="BATCHGAN_TEST_BACKENDS"):
            parse_test_backends(bad)
    # CudaOps copies a test's CPU tensors, nested too, and leaves other devices' tensors alone.
    x, y, m = torch.ones(2), torch.zeros(1), torch.empty(3, device="meta")
    moved = moved_tensors((x, [y, m], {"k": x}, 3), "cpu", "meta")
    assert moved[0].device.type == "meta" and moved[1][0].device.type == "meta" and moved[2]["k"].is_meta
    assert moved[1][1] is m and moved[3] == 3 and isinstance(moved[1], list)


def test_sanitizer_stage_runs_the_four_tools_and_reports_the_failing_one(tmp_path, monkeypatch):
    # A stand-in compute-sanitizer: racecheck reports a hazard, the other tools pass.
    fake = tmp_path / "bin" / "compute-sanitizer"
    fake.parent.mkdir()
    fake.write_text(
        '#!/bin/sh\nif [ "$2" = racecheck ]; then echo "========= ERROR SUMMARY: 1 error"; exit 1; fi\n'
        'echo "========= ERROR SUMMARY: 0 errors"\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    stage = gpu_check.sanitizer_stage(dry_run=False, log_dir=str(tmp_path / "logs"))
    with pytest.raises(gpu_check.StageFailed, match=r"\['racecheck'\]") as failed:
        stage.run(60.0)
    results = failed.value.details["results"]
    assert set(results) == set(gpu_check.SANITIZER_TOOLS)
    assert {t: r["returncode"] for t, r in results.items()} == {t: int(t == "racecheck") for t in results}
    assert results["racecheck"]["summary"] == "ERROR SUMMARY: 1 error" and os.path.isfile(results["memcheck"]["log"])


def test_tests_stage_reports_pytest_summary(tmp_path, monkeypatch):
    # A stand-in pytest that prints a summary line and fails.
    monkeypatch.setattr(
        gpu_check, "pytest_command", lambda: ["sh", "-c", 'echo "=== 2 failed, 5 passed in 1.0s ==="; exit 1']
    )
    with pytest.raises(gpu_check.StageFailed, match="2 failed, 5 passed") as failed:
        gpu_check.tests_stage(dry_run=False, log_dir=str(tmp_path)).run(60.0)
    assert failed.value.details["returncode"] == 1 and os.path.isfile(tmp_path / "tests.log")


def test_preflight_prints_the_arch_list_or_refuses(monkeypatch, capsys):
    monkeypatch.setattr(gpu_check, "detect_capabilities", lambda: [(9, 0), (8, 0)])
    assert gpu_check.main(["--arch-list"]) == 0 and capsys.readouterr().out == "8.0;9.0\n"
    monkeypatch.setattr(gpu_check, "detect_capabilities", lambda: [])
    assert gpu_check.main(["--arch-list"]) == gpu_check.NO_GPU_EXIT_CODE
    assert "no CUDA device found" in capsys.readouterr().err
    monkeypatch.undo()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # CUDA's "no device", whatever the machine has
    assert gpu_check.detect_capabilities() == []
