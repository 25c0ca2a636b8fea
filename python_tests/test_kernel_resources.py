"""The register/spill gate (.ci/check_kernel_resources.py) on recorded ptxas -v output: clean
reports pass, spills and stack frames fail, a kernel missing from an architecture's report fails,
a CPU-only build is skipped, and the occupancy estimate matches the occupancy calculator on
known cases."""

import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, ".ci", "check_kernel_resources.py")

spec = importlib.util.spec_from_file_location("check_kernel_resources", SCRIPT)
ckr = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ckr)

FWD = "_ZN8batchgan4cuda27bernoulli_kl_forward_kernelIffEEvPKT_PKT0_lNS_6KLModeEPS2_PS5_"
FWD64 = "_ZN8batchgan4cuda27bernoulli_kl_forward_kernelIddEEvPKT_PKT0_lNS_6KLModeEPS2_PS5_"


def entry(mangled, arch, regs, stack=0, stores=0, loads=0, smem=128):
    """The four lines ptxas -v prints for one entry function (as recorded from nvcc 13.0)."""
    return [
        f"ptxas info    : Compiling entry function '{mangled}' for '{arch}'",
        f"ptxas info    : Function properties for {mangled}",
        f"    {stack} bytes stack frame, {stores} bytes spill stores, {loads} bytes spill loads",
        f"ptxas info    : Used {regs} registers, used 1 barriers, {smem} bytes smem, 400 bytes cmem[0]",
        "ptxas info    : Compile time = 97.371 ms",
    ]


CUDA_CONFIG = ["  [batchgan_ext]   backends: cpu, cuda", "  [batchgan_ext]   arch_list: 8.0;9.0+PTX"]
CLEAN = (
    ["ptxas info    : 28 bytes gmem, 224 bytes cmem[4]"]
    + entry(FWD, "sm_80", 27)
    + entry(FWD64, "sm_80", 42, smem=256)
    + entry(FWD, "sm_90", 26)
    + entry(FWD64, "sm_90", 40, smem=256)
)


def write(tmp_path, lines, name="build.log"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_parser_reads_every_field_per_arch():
    records = ckr.parse_ptxas(CLEAN)
    assert [(r.arch, r.registers, r.shared) for r in records] == [
        ("sm_80", 27, 128),
        ("sm_80", 42, 256),
        ("sm_90", 26, 128),
        ("sm_90", 40, 256),
    ]
    assert all(r.entry and r.stack == r.spill_stores == r.spill_loads == 0 for r in records)
    for r, d in zip(records, ckr.demangle([r.mangled for r in records])):
        ckr.describe(r, d)
    if ckr.shutil.which("c++filt"):
        assert [(r.name, r.dtype) for r in records[:2]] == [
            ("bernoulli_kl_forward_kernel", "float32"),
            ("bernoulli_kl_forward_kernel", "float64"),
        ]


def test_describe_names_dtype_and_extra_template_arguments():
    r = ckr.Usage("x", "sm_90")
    ckr.describe(r, "void batchgan::cuda::pairwise_l1_backward_kernel<c10::BFloat16, float, 8>(float const*, long)")
    assert (r.name, r.dtype) == ("pairwise_l1_backward_kernel", "bfloat16 <8>")
    ckr.describe(r, "void batchgan::cuda::mix_forward_kernel<unsigned int>(unsigned int const*)")
    assert (r.name, r.dtype) == ("mix_forward_kernel", "unsigned int")


def test_clean_report_passes(tmp_path, capsys):
    assert ckr.main(["--no-expect", write(tmp_path, CUDA_CONFIG + CLEAN)]) == 0
    out = capsys.readouterr().out
    assert "resource gate passed" in out
    assert "bernoulli_kl_forward_kernel" in out and "27 / 26" in out and "0+0 / 0+0" in out


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(stores=8, loads=8), "spills 8 bytes stores, 8 bytes loads"),
        (dict(stack=32), "32 bytes stack frame"),
    ],
)
def test_spills_and_stack_frames_fail(tmp_path, capsys, bad, message):
    lines = CUDA_CONFIG + CLEAN + entry(FWD, "sm_90", 255, **bad)
    assert ckr.main(["--no-expect", write(tmp_path, lines)]) == 1
    out = capsys.readouterr().out
    assert "resource gate FAILED" in out and message in out and "(sm_90)" in out


# pairwise_l1_forward_kernel<double, double> before issue 14's fix (nvcc 13.0, sm_90): the
# label-indexed sums array on the stack.
PAIRWISE_FWD64 = "_ZN8batchgan4cuda26pairwise_l1_forward_kernelIddEEvPKT_PKiPKT0_PS2_llllb"
PAIRWISE_FWD64_SM90 = [
    f"ptxas info    : Compiling entry function '{PAIRWISE_FWD64}' for 'sm_90'",
    f"ptxas info    : Function properties for {PAIRWISE_FWD64}",
    "    64 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads",
    "ptxas info    : Used 96 registers, used 1 barriers, 64 bytes cumulative stack size, 8192 bytes smem",
]


def test_recorded_stack_frame_of_the_old_pairwise_forward_fails(tmp_path, capsys):
    (r,) = ckr.parse_ptxas(PAIRWISE_FWD64_SM90)
    assert (r.registers, r.stack, r.shared) == (96, 64, 8192)
    assert ckr.main(["--no-expect", write(tmp_path, CUDA_CONFIG + CLEAN + PAIRWISE_FWD64_SM90)]) == 1
    out = capsys.readouterr().out
    assert "64 bytes stack frame" in out and "31.2%" in out  # 96 registers x 128 threads: 5 blocks


def test_non_inlined_device_function_frame_fails(tmp_path, capsys):
    lines = CUDA_CONFIG + CLEAN[:3] + ["ptxas info    : Function properties for _Z6helperv"]
    lines += ["    24 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads"] + CLEAN[3:]
    records = ckr.parse_ptxas(lines)
    assert [r.entry for r in records].count(False) == 1 and records[0].registers == 27
    assert ckr.main(["--no-expect", write(tmp_path, lines)]) == 1
    assert "24 bytes stack frame" in capsys.readouterr().out


def test_missing_kernel_or_arch_fails(tmp_path, capsys):
    # Only the sm_80 half of the report: every kernel of csrc/ops is missing for sm_90, and the
    # kernels other than bernoulli_kl_forward_kernel for sm_80 too.
    assert ckr.main([write(tmp_path, CUDA_CONFIG + CLEAN[:11])]) == 1
    out = capsys.readouterr().out
    assert "pairwise_l1_forward_kernel: not in ptxas' report for sm_80" in out
    assert "bernoulli_kl_forward_kernel: not in ptxas' report for sm_90" in out
    assert "bernoulli_kl_forward_kernel: not in ptxas' report for sm_80" not in out


def test_every_kernel_of_csrc_has_a_launch_block_size():
    kernels = ckr.expected_kernels()
    assert {"pairwise_l1_forward_kernel", "pairwise_l1_backward_kernel", "mix_forward_kernel"} <= kernels
    constants = ckr.launch_constants()
    for name in kernels:
        threads = ckr.block_threads(name, constants)
        assert threads and threads % 32 == 0, name


def test_cpu_only_build_is_skipped_unless_cuda_is_required(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("BATCHGAN_FORCE_CUDA", raising=False)
    log = write(tmp_path, ["[batchgan_ext]   backends: cpu", "[batchgan_ext]   arch_list: None"])
    assert ckr.main([log]) == 0
    assert "no CUDA backend" in capsys.readouterr().out
    assert ckr.main(["--require-cuda", log]) == 1
    monkeypatch.setenv("BATCHGAN_FORCE_CUDA", "1")
    assert ckr.main([log]) == 1


def test_cuda_build_without_ptxas_report_fails(tmp_path):
    # The CUDA backend was built but nvcc ran without -Xptxas=-v: every kernel is missing.
    assert ckr.main([write(tmp_path, CUDA_CONFIG)]) == 1


@pytest.mark.parametrize(
    "regs, smem, threads, arch, expected_blocks, expected",
    [
        (32, 0, 256, "sm_80", 8, 1.0),  # warps limit: 8 blocks of 8 warps
        (64, 0, 128, "sm_90", 8, 0.5),  # 2048 regs a warp, 8192 a block: 8 blocks
        (96, 4096, 128, "sm_90", 5, 0.3125),  # 12288 regs a block: 5 blocks, 20 warps
        (156, 8192, 128, "sm_80", 3, 0.1875),  # 156*32 = 4992 rounds up to 5120 regs a warp
        (255, 0, 1024, "sm_90", 0, 0.0),  # 8192 regs a warp x 32 warps > 65536: does not fit
        (32, 48 * 1024, 128, "sm_80", 3, 0.1875),  # shared: 164 KB / (48 KB + 1 KB reserved)
        (32, 48 * 1024, 128, "sm_90", 4, 0.25),  # 228 KB / 49 KB
        (16, 0, 32, "sm_90", 32, 0.5),  # block limit: 32 blocks of 1 warp
        (40, 0, 100, "sm_80", 12, 0.75),  # 100 threads take 4 warps: 5120 regs a block
    ],
)
def test_occupancy_estimate_known_cases(regs, smem, threads, arch, expected_blocks, expected):
    occ, blocks = ckr.occupancy(regs, smem, threads, ckr.ARCHES[arch])
    assert blocks == expected_blocks
    assert occ == pytest.approx(expected)


def test_duplicate_compiles_keep_the_worst(tmp_path):
    records = ckr.merge(ckr.parse_ptxas(entry(FWD, "sm_90", 30) + entry(FWD, "sm_90", 40) + entry(FWD, "sm_90", 35)))
    assert [r.registers for r in records] == [40]


def test_grid_limited_occupancy_at_n256():
    # The pre-fix pairwise backward (float32, 92 registers on sm_90: 5 blocks of 4 warps per SM) at
    # N=256, B=100 had 2 x 100 blocks of 128 threads: on 132 SMs 800 warps, 9.5% of 132 x 64.
    occ, per_sm = ckr.occupancy(92, 4096, 128, ckr.ARCHES["sm_90"])
    assert per_sm == 5
    assert ckr.grid_limited_occupancy(200, 128, 5, ckr.ARCHES["sm_90"]) == pytest.approx(800 / 132 / 64)
    # A grid that fills every SM is capped by the per-SM residency.
    assert ckr.grid_limited_occupancy(10_000, 128, 5, ckr.ARCHES["sm_90"]) == pytest.approx(20 / 64)


@pytest.mark.parametrize(
    "n, kernels, sets, slices",
    [
        (256, 100, 1, 4),  # 200 blocks: 4 slices of 64 samples
        (4096, 100, 1, 1),  # 3,200 blocks fill the GPU
        (37, 2, 1, 1),  # fewer samples than a slice's minimum
        (130, 1, 1, 3),  # 3 slices of 64 samples (the last one 2)
    ],
)
def test_pairwise_slices_as_launch_config_picks_them(n, kernels, sets, slices):
    constants = ckr.launch_constants()
    assert ckr.pairwise_slices(constants, n, kernels, sets) == slices
    assert ckr.pairwise_grid_blocks(constants, n, kernels, sets) == -(-n // 128) * slices * kernels * sets
