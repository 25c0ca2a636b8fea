"""Build of batchgan_ext: CPU kernels always, CUDA kernels when a CUDA build of torch and nvcc
are present (pytorch_scatter's approach), plus the emulated-CUDA test module.

Switches (environment variables):
  BATCHGAN_FORCE_CPU=1     build the CPU kernels only, even where CUDA could be built.
  BATCHGAN_FORCE_CUDA=1    build the CUDA kernels or fail (no silent CPU-only fallback).
  BATCHGAN_BUILD_EMULATED=0  skip batchgan_ext._emulated (the CUDA kernels compiled for the
                           CPU emulator; the tests need it). Default: built.
  TORCH_CUDA_ARCH_LIST     GPU targets, default DEFAULT_TORCH_CUDA_ARCH_LIST below.
  CUDA_HOME                CUDA toolkit; default: found from nvcc on PATH or /usr/local/cuda.
  MAX_JOBS                 parallel compile jobs (ninja).
  BATCHGAN_SANITIZE        build the CPU kernels and batchgan_ext._emulated under sanitizers, for
                           .ci/sanitizers.sh: `address,undefined` (ASan + UBSan; a UBSan finding
                           aborts) or `thread` (TSan). Adds -fsanitize=..., -fno-omit-frame-pointer,
                           -g and -O1 to the C++ compile and link flags of both extensions; CPU-only
                           (no .cu files). The modules then need the sanitizer runtime preloaded
                           (LD_PRELOAD, as .ci/sanitizers.sh does). Default: unset (no sanitizers).
"""

import glob
import os
import shutil
import sys

from setuptools import setup

ROOT = os.path.dirname(os.path.abspath(__file__))

# sm_80, sm_90 and PTX; no GPU probing. CMakeLists.txt reads its default from this line.
DEFAULT_TORCH_CUDA_ARCH_LIST = "8.0;9.0+PTX"


def _flag(name, default="0"):
    return os.environ.get(name, default).strip().lower() in ("1", "true", "yes", "on")


SANITIZERS = ("address", "undefined", "thread")


def _sanitizers():
    """BATCHGAN_SANITIZE as a list; exits on an unknown name or TSan combined with ASan."""
    names = [n.strip() for n in os.environ.get("BATCHGAN_SANITIZE", "").lower().split(",") if n.strip()]
    unknown = [n for n in names if n not in SANITIZERS]
    if unknown:
        sys.exit(f"batchgan_ext: BATCHGAN_SANITIZE: unknown sanitizer(s) {unknown}; choose from {list(SANITIZERS)}.")
    if "thread" in names and "address" in names:
        sys.exit("batchgan_ext: BATCHGAN_SANITIZE: thread and address cannot be combined (two builds).")
    return names


def _sanitizer_flags(names):
    """(compile flags, link flags) for the sanitizers `names`: -O1 and frame pointers for usable
    stacks, -g for file:line in reports, and UBSan made fatal so that a finding fails the tests."""
    if not names:
        return [], []
    sanitize = "-fsanitize=" + ",".join(names)
    compile_flags = [sanitize, "-fno-omit-frame-pointer", "-g", "-O1"]
    if "undefined" in names:
        compile_flags.append("-fno-sanitize-recover=undefined")
    return compile_flags, [sanitize]


def _find_cuda_home():
    """The toolkit root: nvcc on PATH may be a wrapper script outside it (/usr/local/bin/nvcc)."""
    if os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH"):
        return os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    candidates = []
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.append(os.path.dirname(os.path.dirname(os.path.realpath(nvcc))))
    candidates.append("/usr/local/cuda")
    for home in candidates:
        if os.path.exists(os.path.join(home, "include", "cuda_runtime.h")) and os.path.exists(
            os.path.join(home, "bin", "nvcc")
        ):
            return home
    return None


_cuda_home = _find_cuda_home()
if _cuda_home:
    # torch.utils.cpp_extension reads CUDA_HOME when it is imported.
    os.environ["CUDA_HOME"] = _cuda_home

import torch  # noqa: E402
from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension  # noqa: E402


def _nvidia_wheel_include_dirs():
    """Headers that torch's CUDA headers include (cusparse.h, cublas_v2.h, cudnn.h) ship in the
    nvidia-* wheels torch depends on, not necessarily in the toolkit."""
    try:
        import nvidia  # namespace package installed with CUDA builds of torch
    except ImportError:
        return []
    dirs = []
    for base in list(nvidia.__path__):
        dirs += sorted(glob.glob(os.path.join(base, "*", "include")))
    return dirs


def resolve_configuration():
    force_cpu = _flag("BATCHGAN_FORCE_CPU")
    force_cuda = _flag("BATCHGAN_FORCE_CUDA")
    sanitize = _sanitizers()
    if force_cpu and force_cuda:
        sys.exit("batchgan_ext: BATCHGAN_FORCE_CPU and BATCHGAN_FORCE_CUDA are both set; choose one.")
    if sanitize and force_cuda:
        sys.exit("batchgan_ext: BATCHGAN_SANITIZE builds the CPU kernels only; unset BATCHGAN_FORCE_CUDA.")
    torch_cuda = torch.version.cuda
    reasons = []
    if torch_cuda is None:
        reasons.append(f"torch {torch.__version__} is a CPU-only build")
    if _cuda_home is None:
        reasons.append("no CUDA toolkit (nvcc) found; set CUDA_HOME")
    if force_cuda and reasons:
        sys.exit("batchgan_ext: BATCHGAN_FORCE_CUDA=1 but CUDA kernels cannot be built: " + "; ".join(reasons))
    with_cuda = not force_cpu and not sanitize and not reasons
    if force_cpu:
        reasons = ["BATCHGAN_FORCE_CPU=1"]
    elif sanitize:
        reasons = ["BATCHGAN_SANITIZE is set (sanitizer builds are CPU-only)"]
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", DEFAULT_TORCH_CUDA_ARCH_LIST)
    config = {
        "with_cuda": with_cuda,
        "torch": torch.__version__,
        "torch_cuda": torch_cuda,
        "cuda_home": _cuda_home,
        "arch_list": os.environ["TORCH_CUDA_ARCH_LIST"] if with_cuda else None,
        "emulated": _flag("BATCHGAN_BUILD_EMULATED", "1"),
        "sanitize": ",".join(sanitize) or None,
    }
    print("[batchgan_ext] build configuration:")
    print("[batchgan_ext]   backends: cpu%s" % (", cuda" if with_cuda else ""))
    if not with_cuda:
        print("[batchgan_ext]   cuda kernels skipped: {}".format("; ".join(reasons)))
    for key in ("torch", "torch_cuda", "cuda_home", "arch_list", "emulated", "sanitize"):
        print(f"[batchgan_ext]   {key}: {config[key]}")
    return config


def _sources(pattern):
    return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern), recursive=True))


def extensions(config):
    include_dirs = [os.path.join(ROOT, "csrc")]
    # -g0: no debug info (Python's own CFLAGS carry -g), for smaller objects and faster builds.
    # -fno-trapping-math: we never read floating-point exception flags; without it GCC turns
    # selects such as `y > 0 ? dy : dy * slope` into branches instead of vector blends
    # (measured 10x slower on random signs).
    cxx_flags = ["-O3", "-g0", "-fno-trapping-math", "-fopenmp", "-Wall", "-Wno-unknown-pragmas"]
    # at::parallel_for is inlined into our kernels and parallelises with OpenMP only when
    # this translation unit is compiled with it; torch ships its own libgomp.
    link_args = ["-fopenmp"]
    # Sanitizer flags come last: their -O1 and -g override the -O3/-O2 and -g0 above.
    sanitize_cxx, sanitize_link = _sanitizer_flags(config["sanitize"].split(",") if config["sanitize"] else [])
    cxx_flags += sanitize_cxx
    link_args += sanitize_link
    sources = (
        _sources("csrc/*.cpp")
        + _sources("csrc/ops/*/*.cpp")
        + _sources("csrc/ops/*/cpu/*.cpp")
        + _sources("csrc/ops/*/autograd/*.cpp")
        + _sources("csrc/ops/*/autocast/*.cpp")
    )
    define_macros = []
    if config["with_cuda"]:
        sources += _sources("csrc/ops/*/cuda/*.cu")
        define_macros += [("WITH_CUDA", None), ("BATCHGAN_CUDA_VERSION", f'"{torch.version.cuda}"')]
        include_dirs += _nvidia_wheel_include_dirs()
        ext = CUDAExtension(
            "batchgan_ext._C",
            sources,
            include_dirs=include_dirs,
            define_macros=define_macros,
            # -Xptxas=-v: ptxas' register/spill report of every kernel in the build log, which
            # .ci/check_kernel_resources.py gates on.
            extra_compile_args={
                "cxx": cxx_flags,
                "nvcc": ["-O3", "--expt-relaxed-constexpr", "-lineinfo", "-Xptxas=-v"],
            },
            extra_link_args=link_args,
        )
    else:
        ext = CppExtension(
            "batchgan_ext._C",
            sources,
            include_dirs=include_dirs,
            define_macros=define_macros,
            extra_compile_args={"cxx": cxx_flags},
            extra_link_args=link_args,
        )
    exts = [ext]
    if config["emulated"]:
        exts.append(
            CppExtension(
                "batchgan_ext._emulated",
                _sources("csrc/emulated/*.cpp") + _sources("csrc/ops/*/cuda/*_emulated.cpp"),
                include_dirs=[os.path.join(ROOT, "csrc")],
                extra_compile_args={"cxx": ["-O2", "-g0", "-pthread", "-Wall", "-Wno-unknown-pragmas"] + sanitize_cxx},
                extra_link_args=["-pthread"] + sanitize_link,
            )
        )
    return exts


config = resolve_configuration()

setup(
    # Name, version, dependencies, extras, the console script and the packages are in pyproject.toml.
    ext_modules=extensions(config),
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
