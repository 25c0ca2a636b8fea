"""End-to-end discriminator step (issue deliverable 8): forward + backward + Adam step of the SN-GAN
"standard CNN" discriminator (Miyato et al., 2018, Table 3b; batchgan_ext.train.image_networks) on
3x32x32 images, 64 real + 64 fake, for M-BGAN and BGAN over sets of 16 (BGAN paper, eq. 12-14).

Candidates, all timed round-robin in one run (float32 and bf16 autocast alike):
  standard  the floor: the plain SN-GAN D on cat(real, fake), 128 images, BCE-with-logits
  package   make_equivariant(D, 16, reduce=None) and GANLoss(method, set_size=16).discriminator_loss
            (MixedBatch(complement=True): 64 mixed + 64 complement images, bernoulli_kl_loss)
  naive     the same model in plain PyTorch: each eq. 12 layer is two nn.Conv2d/nn.Linear (Lambda with
            the bias, Gamma), y = Lambda*x + Gamma*(x.view(G, S, ...).mean(1)) expanded over the set,
            then nn.LeakyReLU; the mixing draws per-set ratios and a Bernoulli mask and selects with
            torch.where (complement: the inverted mask); the KL by its formula. Same parameter
            shapes, spectral norm on Lambda and Gamma; its loss is checked against the package's at
            start-up (same weights, same mixing draw).
  compiled  torch.compile (inductor) of naive's loss (the select, D, the KL); the draw and Adam stay eager

Each batch method sends 128 images through D plus a Gamma term on the G = 128/S set means per
layer, so its expected floor is (1 + 1/S) x the standard step. Times are medians over the
rounds; ratios are medians of per-round ratios (paired), which cancels the shared machine's drift.
The first call of a compiled candidate includes its compilation (shorter once inductor's on-disk
cache is warm); the bf16 rows run under torch.autocast("cpu", dtype=torch.bfloat16). A candidate
that raises (e.g. an op that fails under autocast) is reported in the table instead of timed.

    python benchmarks/bench_end_to_end.py [--quick] [--no-compile]
    python benchmarks/bench_end_to_end.py --profile     where the M-BGAN step's extra time goes

--profile prints, instead of the timing table, the self time per step of every operator in the float32
standard and M-BGAN package steps (torch.profiler, after warm-up), side by side and sorted by the
difference, so that the step's overhead over the floor can be split into the Gamma products, the
package's own passes and the per-parameter work (spectral norm and Adam on Gamma's weights).
"""

import argparse
import copy
import os
import re
import sys
import time
import warnings
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from batchgan_ext import make_equivariant, sample_mixing
from batchgan_ext.train.image_networks import make_image_discriminator
from batchgan_ext.train.objectives import GANLoss

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import format_time, paired_ratio, print_table, steady_state_allocator, time_interleaved, write_json

SET_SIZE = 16
HALF_BATCH = 64  # real and fake samples per step
IMAGE = (3, 32, 32)
GAMMA = 0.5  # GANLoss's default batch smoothing (the uniform prior of eq. 4)
METHODS = ("mbgan", "bgan")
PRECISIONS = ("float32", "bf16")
EXPECTED_FLOOR = 1 + 1 / SET_SIZE
STEP_TARGET = EXPECTED_FLOOR * 1.03  # issue: M-BGAN step <= (1 + 1/S) x 1.03 of the standard step
NAIVE_TARGET = 0.85  # package at least 15% faster than naive eager: package / naive <= 0.85


# -------------------------------------------------------------------------------------------
# the naive model, mixing and loss


class NaiveSetLayer(nn.Module):
    """Eq. 12 written with two plain layers: y = main(x) + set_term(mean of x's set), expanded to the set."""

    def __init__(self, main: nn.Module, set_term: nn.Module, set_size: int):
        super().__init__()
        self.main, self.set_term, self.set_size = main, set_term, set_size  # Lambda + bias, Gamma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g, s = x.shape[0] // self.set_size, self.set_size
        set_mean = x.view(g, s, *x.shape[1:]).mean(1)
        main = self.main(x)
        per_set = self.set_term(set_mean).unsqueeze(1).expand(g, s, *main.shape[1:])
        return (main.view(g, s, *main.shape[1:]) + per_set).view(main.shape)


def naive_equivariant(plain: nn.Sequential, set_size: int) -> nn.Module:
    """``plain`` with each nn.Conv2d/nn.Linear replaced by a NaiveSetLayer (spectral norm on both of its
    layers where the original had it), nested as make_equivariant nests its result."""
    layers: list[nn.Module] = []
    for m in plain:
        if isinstance(m, nn.Conv2d):
            shape = (m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding)
            main, set_term = nn.Conv2d(*shape), nn.Conv2d(*shape, bias=False)
        elif isinstance(m, nn.Linear):
            main, set_term = nn.Linear(m.in_features, m.out_features), nn.Linear(m.in_features, m.out_features, False)
        else:
            layers.append(copy.deepcopy(m))
            continue
        if parametrize.is_parametrized(m, "weight"):
            main, set_term = spectral_norm(main), spectral_norm(set_term)
        layers.append(NaiveSetLayer(main, set_term, set_size))
    return nn.Sequential(nn.Sequential(*layers))


def copy_package_weights(package_model: nn.Module, naive_model: nn.Module) -> None:
    """Loads the package model's Lambda, Gamma, bias and spectral-norm vectors into the naive model
    (strict: every tensor has its counterpart of the same shape)."""
    renamed = {}
    for key, value in package_model.state_dict().items():
        prefix, sn, name, rest = re.fullmatch(
            r"(.*?)\.(parametrizations\.)?(weight_gamma|weight|bias)(\..*)?", key
        ).groups()
        layer = "set_term" if name == "weight_gamma" else "main"
        renamed[f"{prefix}.{layer}.{sn or ''}{'bias' if name == 'bias' else 'weight'}{rest or ''}"] = value
    naive_model.load_state_dict(renamed)


def naive_mixing_draw(num_sets: int, set_size: int, gamma: float, generator=None) -> torch.Tensor:
    """Batch smoothing-gamma (BGAN paper, section 3.1): per set a ratio p ~ U([0, gamma] u [1 - gamma, 1]),
    then a Bernoulli(p) mask (True = real), drawn in sample_mixing's order so that a seed gives its draw."""
    u = torch.rand(num_sets, generator=generator, dtype=torch.float64)
    low = u < 0.5
    p = torch.where(low, gamma * (2 * u), 1 - gamma * (2 * u - 1))
    return (torch.rand(num_sets, set_size, generator=generator, dtype=torch.float64) < p[:, None]).view(-1)


def naive_loss(model, real, fake, mask, method: str, set_size: int = SET_SIZE) -> torch.Tensor:
    """KL(B(u) || B(D)) of eq. 3 on the mixed batch and its complement: eq. 13 (bgan, the sigmoid of each
    set's mean logit) or eq. 14 (mbgan, the sigmoid per sample against its set's ratio)."""
    select = mask.view(-1, *([1] * (real.dim() - 1)))
    batch = torch.cat([torch.where(select, real, fake), torch.where(~select, real, fake)])
    ratio = mask.view(-1, set_size).float().mean(1)
    u = torch.cat([ratio, 1 - ratio])
    logits = model(batch).float().view(-1, set_size)
    logits, u = (logits.mean(1), u) if method == "bgan" else (logits, u[:, None])
    kl = torch.xlogy(u, u) + torch.xlogy(1 - u, 1 - u) + u * F.softplus(-logits) + (1 - u) * F.softplus(logits)
    return kl.mean()


def check_naive_matches_package(plain_d: nn.Module) -> dict:
    """The naive model's loss equals the package's for the same weights and mixing draw (float32)."""
    real, fake = torch.randn(HALF_BATCH, *IMAGE), torch.randn(HALF_BATCH, *IMAGE)
    num_sets = HALF_BATCH // SET_SIZE
    beta, _ = sample_mixing(HALF_BATCH, num_sets, GAMMA, generator=_seeded(7))
    assert torch.equal(beta, naive_mixing_draw(num_sets, SET_SIZE, GAMMA, _seeded(7))), "mixing draws differ"
    out = {}
    for method in METHODS:
        package = make_equivariant(plain_d, SET_SIZE, reduce=None)
        naive = naive_equivariant(plain_d, SET_SIZE)
        copy_package_weights(package, naive)
        shapes = sorted(tuple(p.shape) for p in package.parameters())
        assert shapes == sorted(tuple(p.shape) for p in naive.parameters()), "parameter shapes differ"
        gan = GANLoss(method, set_size=SET_SIZE, gamma=GAMMA)
        expected = gan.discriminator_loss(package, real, fake, generator=_seeded(7))
        got = naive_loss(naive, real, fake, naive_mixing_draw(num_sets, SET_SIZE, GAMMA, _seeded(7)), method)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)
        parameters = sum(p.numel() for p in package.parameters())
        out[method] = {"package_loss": expected.item(), "naive_loss": got.item(), "parameters": parameters}
    return out


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -------------------------------------------------------------------------------------------
# candidates


def _adam(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=2e-4, betas=(0.5, 0.999))  # DCGAN's / SN-GAN's Adam


def _d_step(model, loss_fn, autocast):
    optimizer = _adam(model)

    def step():
        optimizer.zero_grad()
        with autocast():
            loss = loss_fn()
        loss.backward()
        optimizer.step()

    return step


def build_candidates(plain_d, real, fake, compile_for):
    """{(precision, method, candidate): D step}, 'standard' with method '-'; the compiled candidate
    for the (precision, method) pairs in ``compile_for``."""
    num_sets = HALF_BATCH // SET_SIZE
    labels = torch.cat([torch.ones(HALF_BATCH), torch.zeros(HALF_BATCH)])
    fns = {}
    for precision in PRECISIONS:
        autocast = nullcontext if precision == "float32" else lambda: torch.autocast("cpu", dtype=torch.bfloat16)
        standard = copy.deepcopy(plain_d)

        def standard_loss(model=standard):
            logits = model(torch.cat([real, fake])).float().view(-1)
            return F.binary_cross_entropy_with_logits(logits, labels)

        fns[precision, "-", "standard"] = _d_step(standard, standard_loss, autocast)
        for method in METHODS:
            gan = GANLoss(method, set_size=SET_SIZE, gamma=GAMMA)
            package = gan.convert_discriminator(plain_d)
            fns[precision, method, "package"] = _d_step(
                package, lambda gan=gan, model=package: gan.discriminator_loss(model, real, fake), autocast
            )
            naive = naive_equivariant(plain_d, SET_SIZE)
            copy_package_weights(package, naive)

            def naive_fn(model=naive, method=method, loss=naive_loss):
                return loss(model, real, fake, naive_mixing_draw(num_sets, SET_SIZE, GAMMA), method)

            fns[precision, method, "naive"] = _d_step(naive, naive_fn, autocast)
            if (precision, method) in compile_for:
                compiled, compiled_loss = copy.deepcopy(naive), torch.compile(naive_loss)
                fns[precision, method, "compiled"] = _d_step(
                    compiled, lambda f=naive_fn, m=compiled, c=compiled_loss: f(m, loss=c), autocast
                )
    return fns


def _first_calls(fns):
    """Runs each candidate once (compiling where it compiles); a candidate that raises is dropped and
    its error reported. Returns {key: seconds of the first call or the error text}."""
    first = {}
    for key in list(fns):
        try:
            t0 = time.perf_counter()
            fns[key]()
            first[key] = time.perf_counter() - t0
        except Exception as error:  # reported in the table, not fatal
            first[key] = f"{type(error).__name__}: {str(error).splitlines()[0][:90]}"
            del fns[key]
    return first


# -------------------------------------------------------------------------------------------
# the run


def _fmt(value, digits=3):
    return "-" if value is None else f"{value:.{digits}f}"


def run(quick=False, compile_naive=True, width=64):
    rounds, warmup = (3, 1) if quick else (15, 1)
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    plain_d = make_image_discriminator(channels=IMAGE[0], width=width)
    loss_check = check_naive_matches_package(plain_d)
    real, fake = torch.randn(HALF_BATCH, *IMAGE), torch.randn(HALF_BATCH, *IMAGE).tanh()

    # torch.compile takes about a minute per graph (forward + backward) on 2 cores, more than --quick's budget.
    compile_for = [(p, m) for p in PRECISIONS for m in METHODS] if compile_naive and not quick else []
    skip_reason = "skipped (--quick: ~1 min of compile per graph)" if quick else "skipped (--no-compile)"
    fns = build_candidates(plain_d, real, fake, compile_for)
    first = _first_calls(fns)
    samples: dict = {}
    times = time_interleaved(fns, warmup=warmup, rounds=rounds, samples_out=samples) if fns else {}

    def ratio(a, b):
        return paired_ratio(samples, a, b) if a in samples and b in samples else None

    keys = [(p, "-", "standard") for p in PRECISIONS]
    keys[1:1] = [(p, m, c) for p in PRECISIONS[:1] for m in METHODS for c in ("package", "naive", "compiled")]
    keys += [(p, m, c) for p in PRECISIONS[1:] for m in METHODS for c in ("package", "naive", "compiled")]
    rows, records = [], []
    for key in keys:
        precision, method, candidate = key
        status = first.get(key, skip_reason)  # seconds of the first call, or why there is no time
        error = status if isinstance(status, str) else None
        vs_standard = ratio(key, (precision, "-", "standard"))
        package_over = ratio((precision, method, "package"), key) if candidate in ("naive", "compiled") else None
        bf16_over_fp32 = ratio(key, ("float32", method, candidate)) if precision == "bf16" else None
        floor = 1.0 if candidate == "standard" else EXPECTED_FLOOR
        rows.append(
            [
                precision,
                "standard (floor)" if candidate == "standard" else f"{method} {candidate}",
                error or format_time(times[key]),
                _fmt(vs_standard),
                _fmt(floor, 4),
                _fmt(package_over),
                _fmt(bf16_over_fp32),
                format_time(status) if candidate == "compiled" and not error else "-",
            ]
        )
        records.append(
            {
                "precision": precision,
                "method": method,
                "candidate": candidate,
                "seconds": None if error else times[key],
                "error": error,
                "vs_standard_paired": vs_standard,
                "expected_floor": floor,
                "package_over_candidate_paired": package_over,
                "bf16_over_float32_paired": bf16_over_fp32,
                "first_call_seconds": None if error else status,
            }
        )
    print_table(
        f"D step (forward + backward + Adam), SN-GAN D width {width}, {IMAGE[0]}x{IMAGE[1]}x{IMAGE[2]}, "
        f"{HALF_BATCH} real + {HALF_BATCH} fake (128 images through D), sets of {SET_SIZE}; medians of "
        f"{rounds} interleaved rounds; ratios (/standard: the same precision's standard step) are medians of "
        f"per-round ratios; {torch.get_num_threads()} threads",
        ["precision", "candidate", "median", "/standard", "expected", "package/this", "bf16/float32",
         "first call (compiles)"],
        rows,
    )  # fmt: skip

    package, bf16_package = ("float32", "mbgan", "package"), ("bf16", "mbgan", "package")
    targets = [
        ("M-BGAN float32: package / standard", package, ("float32", "-", "standard"), STEP_TARGET),
        ("M-BGAN float32: package / naive eager", package, ("float32", "mbgan", "naive"), NAIVE_TARGET),
        ("M-BGAN float32: package / naive compiled", package, ("float32", "mbgan", "compiled"), 1.0),
        ("M-BGAN package: bf16 autocast / float32", bf16_package, package, 1.0),
    ]
    target_rows, target_records = [], []
    for name, a, b, bound in targets:
        value = ratio(a, b)
        met = None if value is None else value <= bound
        failed = isinstance(first.get(a), str)  # the package's own step raised: the target is missed
        met = False if failed else met
        verdict = "NO (package step fails)" if failed else {None: "not measured", True: "yes", False: "NO"}[met]
        target_rows.append([name, _fmt(value), f"<= {bound:.3f}", verdict])
        target_records.append({"target": name, "measured": value, "bound": bound, "met": met})
    print_table("targets (issue deliverable 8, CPU)", ["target", "measured", "bound", "met"], target_rows)

    write_json(
        "end_to_end",
        {
            "config": {
                "width": width,
                "image": list(IMAGE),
                "real_per_step": HALF_BATCH,
                "fake_per_step": HALF_BATCH,
                "set_size": SET_SIZE,
                "gamma": GAMMA,
                "optimizer": "Adam(lr=2e-4, betas=(0.5, 0.999))",
                "quick": quick,
            },
            "rounds": rounds,
            "loss_check": loss_check,
            "candidates": records,
            "targets": target_records,
        },
    )
    return target_records


def profile_steps(width=64, steps=4, rows=25):
    """Self time per step of each operator, float32 standard step against the M-BGAN package step."""
    from torch.profiler import ProfilerActivity, profile

    warnings.filterwarnings("ignore")
    steady_state_allocator()
    torch.manual_seed(0)
    plain_d = make_image_discriminator(channels=IMAGE[0], width=width)
    real, fake = torch.randn(HALF_BATCH, *IMAGE), torch.randn(HALF_BATCH, *IMAGE).tanh()
    fns = build_candidates(plain_d, real, fake, [])
    keys = {"standard": ("float32", "-", "standard"), "mbgan package": ("float32", "mbgan", "package")}
    per_op = {}
    for name, key in keys.items():
        for _ in range(2):
            fns[key]()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(steps):
                fns[key]()
        per_op[name] = {e.key: (e.self_cpu_time_total / steps / 1e3, e.count // steps) for e in prof.key_averages()}
    ops = set(per_op["standard"]) | set(per_op["mbgan package"])

    def get(name, op):
        return per_op[name].get(op, (0.0, 0))

    ranked = sorted(ops, key=lambda op: -abs(get("mbgan package", op)[0] - get("standard", op)[0]))
    table = [
        [op[:60], f"{get('standard', op)[0]:.2f} ({get('standard', op)[1]})",
         f"{get('mbgan package', op)[0]:.2f} ({get('mbgan package', op)[1]})",
         f"{get('mbgan package', op)[0] - get('standard', op)[0]:+.2f}"]
        for op in ranked[:rows]
    ]  # fmt: skip
    totals = {name: sum(t for t, _ in per_op[name].values()) for name in keys}
    table.append(["total (all operators)", f"{totals['standard']:.2f}", f"{totals['mbgan package']:.2f}",
                  f"{totals['mbgan package'] - totals['standard']:+.2f}"])  # fmt: skip
    print_table(
        f"self time per D step in ms (calls per step), float32, width {width}, {steps} profiled steps, "
        f"{torch.get_num_threads()} threads; sorted by the difference",
        ["operator", "standard", "mbgan package", "difference"],
        table,
    )
    return per_op


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--quick", action="store_true", help="fewer rounds, no torch.compile (about a minute of compiling per graph)"
    )
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile candidates")
    parser.add_argument("--width", type=int, default=64, help="the discriminator's width (SN-GAN: 64)")
    parser.add_argument("--profile", action="store_true", help="per-operator self time instead of the timings")
    args = parser.parse_args(argv)
    if args.profile:
        return profile_steps(width=args.width)
    return run(quick=args.quick, compile_naive=not args.no_compile, width=args.width)


if __name__ == "__main__":
    main()
