"""pairwise_l1_features and MinibatchDiscrimination (Salimans et al. 2016, section 3.2)."""

import itertools

import pytest
import torch

import batchgan_ext as bg
from batchgan_ext._reference.minibatch import pairwise_l1_features_reference

from conftest import FLOAT_DTYPES

# Low-precision inputs: M is rounded to the dtype, then features are sums of up to N terms
# computed in float32 and rounded once.
PAIR_TOLERANCES = {
    torch.float64: dict(rtol=1e-10, atol=1e-12),
    torch.float32: dict(rtol=2e-5, atol=2e-5),
    torch.float16: dict(rtol=2e-3, atol=2e-3),
    torch.bfloat16: dict(rtol=1.6e-2, atol=1.6e-2),
}


def _m(n, b, c, dtype=torch.float64, scale=0.3):
    # Small spread so that exp(-distance) is far from 0 and every pair matters.
    return (scale * torch.randn(n, b, c, dtype=torch.float64)).to(dtype)


SHAPES = [
    # (N, B, C, num_sets): N = 1, odd sizes, sets of 1, sizes around the CPU/CUDA tiles (32, 128).
    (1, 1, 1, 1),
    (1, 3, 5, 1),
    (2, 1, 1, 1),
    (3, 2, 3, 3),
    (7, 5, 3, 1),
    (9, 4, 2, 3),
    (33, 3, 5, 1),
    (64, 2, 16, 4),
    (130, 2, 3, 2),
    (37, 1, 33, 1),
]


@pytest.mark.parametrize("n, b, c, num_sets", SHAPES)
@pytest.mark.parametrize("exclude_self, mean", list(itertools.product([True, False], [False, True])))
def test_pairwise_matches_reference_float64(n, b, c, num_sets, exclude_self, mean):
    M = _m(n, b, c)
    out = bg.pairwise_l1_features(M, num_sets, exclude_self, mean)
    expected = pairwise_l1_features_reference(M, num_sets, exclude_self, mean)
    assert out.shape == (n, b) and out.dtype == torch.float64
    torch.testing.assert_close(out, expected, **PAIR_TOLERANCES[torch.float64])


@pytest.mark.parametrize("n, num_sets, num_populations", [(8, 1, 2), (12, 2, 2), (9, 3, 3), (5, 1, 2), (1, 1, 2)])
@pytest.mark.parametrize("exclude_self, mean", list(itertools.product([True, False], [False, True])))
def test_pairwise_split_matches_reference(n, num_sets, num_populations, exclude_self, mean):
    M = _m(n, 3, 4)
    split = torch.randint(0, num_populations, (n,))
    out = bg.pairwise_l1_features(M, num_sets, exclude_self, mean, split, num_populations)
    expected = pairwise_l1_features_reference(M, num_sets, exclude_self, mean, split, num_populations)
    assert out.shape == (n, num_populations, 3)
    torch.testing.assert_close(out, expected, **PAIR_TOLERANCES[torch.float64])


def test_pairwise_split_populations_sum_to_unsplit():
    M = _m(10, 4, 3)
    split = torch.tensor([0, 1] * 5)
    per_pop = bg.pairwise_l1_features(M, split=split)
    torch.testing.assert_close(per_pop.sum(1), bg.pairwise_l1_features(M))
    # Real/fake halves as in improved-gan's ImageNet model: f1 against the first half.
    halves = torch.tensor([0] * 5 + [1] * 5)
    f = bg.pairwise_l1_features(M, split=halves, mean=True)
    c = torch.exp(-(M[:, None] - M[None]).abs().sum(-1))
    c.diagonal(dim1=0, dim2=1).zero_()
    torch.testing.assert_close(f[:5, 0], c[:5, :5].sum(1) / 4)
    torch.testing.assert_close(f[5:, 0], c[5:, :5].sum(1) / 5)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("n, b, c, num_sets", [(1, 2, 3, 1), (17, 3, 5, 1), (40, 4, 7, 2)])
def test_pairwise_dtypes(dtype, n, b, c, num_sets):
    M = _m(n, b, c, dtype)
    out = bg.pairwise_l1_features(M, num_sets, mean=True)
    assert out.dtype == dtype
    expected = pairwise_l1_features_reference(M.double(), num_sets, mean=True)
    torch.testing.assert_close(out.double(), expected, **PAIR_TOLERANCES[dtype])
    # Backward in every dtype against the float64 reference on the same rounded inputs.
    Mg = M.detach().requires_grad_()
    w = torch.randn(out.shape, dtype=torch.float64)
    (bg.pairwise_l1_features(Mg, num_sets, mean=True).double() * w).sum().backward()
    Mr = M.detach().double().requires_grad_()
    (pairwise_l1_features_reference(Mr, num_sets, mean=True) * w).sum().backward()
    grad_tol = {
        torch.float64: dict(rtol=1e-10, atol=1e-12),
        torch.float32: dict(rtol=1e-4, atol=1e-4),
        torch.float16: dict(rtol=5e-3, atol=5e-3),
        torch.bfloat16: dict(rtol=3e-2, atol=3e-2),
    }[dtype]
    torch.testing.assert_close(Mg.grad.double(), Mr.grad, **grad_tol)


def test_pairwise_exact_values_and_far_points():
    # Two samples at L1 distance 1.5 in kernel 0 and identical in kernel 1.
    M = torch.tensor([[[0.0, 1.0], [2.0, 2.0]], [[0.5, 0.0], [2.0, 2.0]]], dtype=torch.float64)
    out = bg.pairwise_l1_features(M)
    torch.testing.assert_close(out, torch.tensor([[torch.e**-1.5, 1.0]] * 2, dtype=torch.float64))
    incl = bg.pairwise_l1_features(M, exclude_self=False, mean=True)
    torch.testing.assert_close(incl, (1 + out) / 2)
    # Far apart samples: features underflow to exactly 0 in every dtype, never NaN.
    far = torch.tensor([[[0.0]], [[800.0]], [[-900.0]]])  # exp(-800) underflows even in float64
    for dtype in FLOAT_DTYPES:
        o = bg.pairwise_l1_features(far.to(dtype))
        assert torch.equal(o, torch.zeros_like(o))


def test_pairwise_float32_cpu_exp_accuracy():
    # The CPU float32 kernel uses a vectorisable polynomial exp: compare with float64 over a
    # range of distances (0 .. 80) for each pair.
    d = torch.linspace(0, 80, 4001, dtype=torch.float64)
    M = torch.stack([torch.zeros_like(d), d], 0)[:, :, None]  # (2, 4001, 1): kernel b has distance d[b]
    out = bg.pairwise_l1_features(M.float())
    expected = torch.exp(-d.float().double())  # the distances the float32 kernel sees
    torch.testing.assert_close(out[0].double(), expected, rtol=3e-7, atol=0)


def test_pairwise_permutation_equivariance():
    M = _m(23, 6, 4, torch.float32)
    perm = torch.randperm(23)
    out = bg.pairwise_l1_features(M, mean=True)
    torch.testing.assert_close(bg.pairwise_l1_features(M[perm], mean=True), out[perm], rtol=1e-5, atol=1e-6)
    # With num_sets, a permutation within each set is also an equivariance.
    perm_g = torch.cat([torch.randperm(8) + 8 * g for g in range(3)])
    Mg = _m(24, 3, 5)
    og = bg.pairwise_l1_features(Mg, num_sets=3)
    torch.testing.assert_close(bg.pairwise_l1_features(Mg[perm_g], num_sets=3), og[perm_g])
    # Gradients are equivariant too.
    Ma = M.detach().requires_grad_()
    Mb = M[perm].detach().requires_grad_()
    w = torch.randn(23, 6)
    (bg.pairwise_l1_features(Ma) * w).sum().backward()
    (bg.pairwise_l1_features(Mb) * w[perm]).sum().backward()
    torch.testing.assert_close(Mb.grad, Ma.grad[perm], rtol=1e-5, atol=1e-6)


def test_pairwise_sets_are_independent():
    M = _m(12, 3, 2)
    out = bg.pairwise_l1_features(M, num_sets=3)
    for g in range(3):
        torch.testing.assert_close(out[4 * g : 4 * g + 4], bg.pairwise_l1_features(M[4 * g : 4 * g + 4]))


def test_pairwise_non_contiguous_input():
    base = _m(9, 8, 6)
    M = base.transpose(1, 2)[:, ::2]  # (9, 3, 8) with strides
    assert not M.is_contiguous()
    torch.testing.assert_close(bg.pairwise_l1_features(M), pairwise_l1_features_reference(M))


# num_sets * B >= 8 takes the CPU kernel's symmetric path (each pair computed once), below it the
# row path: both are covered here and in SHAPES.
@pytest.mark.parametrize(
    "n, b, c, num_sets",
    [(1, 2, 2, 1), (2, 1, 3, 1), (5, 2, 3, 1), (6, 2, 2, 3), (7, 3, 1, 1), (5, 8, 2, 1), (6, 4, 2, 2), (18, 8, 2, 1)],
)
@pytest.mark.parametrize("exclude_self, mean", [(True, False), (True, True), (False, True)])
def test_pairwise_gradcheck(n, b, c, num_sets, exclude_self, mean):
    M = _m(n, b, c).requires_grad_()
    fn = lambda m: bg.pairwise_l1_features(m, num_sets, exclude_self, mean)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (M,))


def test_pairwise_gradcheck_split():
    M = _m(8, 2, 3).requires_grad_()
    split = torch.tensor([0, 1, 1, 0, 2, 1, 0, 0])
    fn = lambda m: bg.pairwise_l1_features(m, 2, True, True, split, 3)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (M,))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n, num_sets", [(1, 1), (17, 1), (40, 2), (33, 3)])
@pytest.mark.parametrize("exclude_self", [True, False])
def test_pairwise_symmetric_and_row_paths_agree(dtype, n, num_sets, exclude_self):
    # B = 8 kernels at once (symmetric path) vs one kernel at a time (row path, num_sets * 1 < 8).
    M = _m(n, 8, 3, dtype).requires_grad_()
    w = torch.randn(n, 8, dtype=dtype)
    out = bg.pairwise_l1_features(M, num_sets, exclude_self, True)
    (grad,) = torch.autograd.grad((out * w).sum(), M)
    tol = PAIR_TOLERANCES[dtype] if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-5)
    for b in range(8) if num_sets < 8 else []:
        Mb = M[:, b : b + 1].detach().requires_grad_()
        ob = bg.pairwise_l1_features(Mb, num_sets, exclude_self, True)
        (gb,) = torch.autograd.grad((ob * w[:, b : b + 1]).sum(), Mb)
        torch.testing.assert_close(ob, out[:, b : b + 1], **tol)
        torch.testing.assert_close(gb, grad[:, b : b + 1], **tol)


@pytest.mark.parametrize("c", [1, 2, 3, 4, 5, 6, 8, 13, 16, 17])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pairwise_symmetric_path_every_kernel_dim(c, dtype):
    # The CPU symmetric path is compiled for C in {1, 2, 3, 4, 5, 8, 16} and has a run-time-C
    # fallback for the others: all of them against the float64 reference, values and gradient
    # (N = 19: one full block of 16 samples plus a partial one; B = 8 kernels: symmetric path).
    M = _m(19, 8, c, dtype).requires_grad_()
    w = torch.randn(19, 8, dtype=dtype)
    out = bg.pairwise_l1_features(M, 1, True, False)
    (grad,) = torch.autograd.grad((out * w).sum(), M)
    Mr = M.detach().double().requires_grad_()
    ref = pairwise_l1_features_reference(Mr, 1, True, False)
    (grad_ref,) = torch.autograd.grad((ref * w.double()).sum(), Mr)
    tol = PAIR_TOLERANCES[torch.float64] if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.double(), ref, **tol)
    torch.testing.assert_close(grad.double(), grad_ref, **tol)


def test_pairwise_gradient_of_coinciding_samples_is_zero():
    # sign(0) = 0: two identical samples exert no force on each other (torch.abs's rule).
    M = torch.tensor([[[1.0, 2.0]], [[1.0, 2.0]]], dtype=torch.float64, requires_grad=True)
    bg.pairwise_l1_features(M).sum().backward()
    assert torch.equal(M.grad, torch.zeros_like(M))
    Mr = M.detach().requires_grad_()
    pairwise_l1_features_reference(Mr).sum().backward()
    assert torch.equal(Mr.grad, torch.zeros_like(Mr))


@pytest.mark.parametrize("with_split", [False, True])
def test_pairwise_double_backward_raises(with_split):
    # The C++ autograd kernel's backward op is not differentiable: create_graph=True raises
    # instead of silently giving a zero second derivative.
    M = _m(6, 3, 2).requires_grad_()
    split = torch.tensor([0, 1] * 3) if with_split else None
    out = bg.pairwise_l1_features(M, split=split)
    with pytest.raises(
        RuntimeError, match=r"pairwise_l1_features: double backward \(create_graph=True\) is not supported"
    ):
        torch.autograd.grad(out.sum(), M, create_graph=True)
    (grad,) = torch.autograd.grad(out.sum(), M)  # first order still works on the same graph
    assert grad.shape == M.shape and not grad.requires_grad


@pytest.mark.parametrize("with_split", [False, True])
def test_pairwise_opcheck(with_split):
    M = torch.randn(10, 3, 4, requires_grad=True)
    split = torch.tensor([0, 1] * 5) if with_split else None
    P = 2 if with_split else 1
    torch.library.opcheck(torch.ops.batchgan.pairwise_l1_features.default, (M, 2, True, True, split, P))
    grad = torch.randn((10, P, 3) if with_split else (10, 3))
    torch.library.opcheck(
        torch.ops.batchgan._pairwise_l1_features_backward.default, (grad, M.detach(), 2, True, True, split, P)
    )


def _disc_step(x, module, head):
    return (head(module(x)) ** 2).mean()


def test_pairwise_torch_compile_fullgraph():
    torch.manual_seed(1)
    module = bg.MinibatchDiscrimination(6, 4, kernel_dims=3, mean=True)
    head = torch.nn.Linear(10, 1)
    x = torch.randn(8, 6, requires_grad=True)
    eager = _disc_step(x, module, head)
    eager_grads = torch.autograd.grad(eager, (x, module.T))
    compiled = torch.compile(_disc_step, fullgraph=True, backend="aot_eager")
    out = compiled(x, module, head)
    grads = torch.autograd.grad(out, (x, module.T))
    torch.testing.assert_close(out, eager)
    for a, b in zip(grads, eager_grads):
        torch.testing.assert_close(a, b)


class GistMinibatchDiscrimination(torch.nn.Module):
    """The widely copied gist / torchgan MinibatchDiscrimination1d layout (materialises N x N x B x C)."""

    def __init__(self, in_features, out_features, kernel_dims, mean=False):
        super().__init__()
        self.in_features, self.out_features, self.kernel_dims, self.mean = in_features, out_features, kernel_dims, mean
        self.T = torch.nn.Parameter(torch.Tensor(in_features, out_features, kernel_dims))
        torch.nn.init.normal_(self.T, 0, 1)

    def forward(self, x):
        matrices = x.mm(self.T.view(self.in_features, -1)).view(-1, self.out_features, self.kernel_dims)
        M = matrices.unsqueeze(0)
        M_T = M.permute(1, 0, 2, 3)
        norm = torch.abs(M - M_T).sum(3)
        o_b = torch.exp(-norm).sum(0) - 1
        if self.mean:
            o_b = o_b / (x.size(0) - 1)
        return torch.cat([x, o_b], 1)


@pytest.mark.parametrize("mean", [False, True])
def test_module_loads_gist_state_dict_and_matches(mean):
    gist = GistMinibatchDiscrimination(7, 5, 3, mean=mean).double()
    with torch.no_grad():
        gist.T.mul_(0.1)  # keep features away from 0 so the comparison is meaningful
    ours = bg.MinibatchDiscrimination(7, 5, 3, mean=mean).double()
    ours.load_state_dict(gist.state_dict())  # strict: same keys and shapes
    x = torch.randn(11, 7, dtype=torch.float64, requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    out, expected = ours(x), gist(x2)
    assert out.shape == (11, 12)
    torch.testing.assert_close(out, expected)
    w = torch.randn_like(out)
    (out * w).sum().backward()
    (expected * w).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)
    torch.testing.assert_close(ours.T.grad, gist.T.grad)


def test_module_signature_init_and_bias():
    m = bg.MinibatchDiscrimination(512, 64, kernel_dims=16)
    assert m.T.shape == (512, 64, 16) and m.bias is None
    assert list(m.state_dict()) == ["T"]
    # N(0, 1) init
    assert abs(m.T.mean().item()) < 0.01 and abs(m.T.std().item() - 1) < 0.01
    assert m(torch.randn(4, 512)).shape == (4, 512 + 64)
    mb = bg.MinibatchDiscrimination(6, 4, 2, bias=True)
    assert torch.equal(mb.bias.detach(), torch.full((4,), -1.0))  # improved-gan's init
    x = torch.randn(5, 6)
    plain = bg.MinibatchDiscrimination(6, 4, 2)
    plain.T.data.copy_(mb.T.data)
    torch.testing.assert_close(mb(x)[:, 6:], plain(x)[:, 6:] - 1)


def test_module_init_std():
    torch.manual_seed(3)
    small = bg.MinibatchDiscrimination(400, 50, 5, bias=True, init_std=0.05)
    assert abs(small.T.std().item() - 0.05) < 0.001 and abs(small.T.mean().item()) < 0.001
    assert list(small.state_dict()) == ["T", "bias"] and "init_std=0.05" in repr(small)
    assert torch.equal(small.bias.detach(), torch.full((50,), -1.0))
    assert "init_std" not in repr(bg.MinibatchDiscrimination(4, 3, 2))  # the default N(0, 1) is not shown
    for bad in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="init_std: expected a finite value > 0"):
            bg.MinibatchDiscrimination(4, 3, 2, init_std=bad)
    for bad in (True, "0.05", None):
        with pytest.raises(ValueError, match="init_std: expected a real number"):
            bg.MinibatchDiscrimination(4, 3, 2, init_std=bad)


def _improved_gan_init_output(x, T):
    """improved-gan's MinibatchLayer.get_output_for(init=True) (mnist_svhn_cifar10/nn.py) with W = T,
    transcribed: the features it returns on the init batch, f - mean(f), after dividing the
    distances by mean_min_abs_dif; and that divisor."""
    activation = torch.tensordot(x, T, dims=([1], [0]))  # (N, B, C)
    abs_dif = (activation[:, :, :, None] - activation.permute(1, 2, 0)[None]).abs().sum(2)  # (N, B, N)
    abs_dif = abs_dif + 1e6 * torch.eye(x.shape[0], dtype=x.dtype)[:, None, :]
    mean_min_abs_dif = 0.5 * abs_dif.min(2).values.mean(0)
    abs_dif = abs_dif / mean_min_abs_dif[None, :, None]
    f = torch.exp(-abs_dif).sum(2)
    return f - f.mean(0, keepdim=True), mean_min_abs_dif


def _half_mean_min_l1(M, num_sets):
    """Per kernel, 0.5 * mean over samples of the L1 distance to the nearest other sample of the set."""
    n, b, _ = M.shape
    dist = (M[:, None] - M[None, :]).abs().sum(-1)  # (N, N, B)
    idx = torch.arange(n)
    other = (idx[:, None] // (n // num_sets) == idx[None, :] // (n // num_sets)) & (idx[:, None] != idx[None, :])
    dist = torch.where(other[:, :, None], dist, torch.full_like(dist, float("inf")))
    return 0.5 * dist.min(1).values.mean(0)


def test_module_init_from_batch_is_improved_gans_init():
    torch.manual_seed(4)
    m = bg.MinibatchDiscrimination(12, 6, 5, bias=True, init_std=0.05).double()
    T0 = m.T.detach().clone()
    x = torch.randn(40, 12, dtype=torch.float64)
    m.init_from_batch(x)
    expected, divisor = _improved_gan_init_output(x, T0)
    torch.testing.assert_close(m.T.detach(), T0 / divisor[None, :, None], rtol=1e-12, atol=0)
    # The forward (fused op) now gives exactly what improved-gan's init pass returns: f - mean(f).
    out = m(x)
    torch.testing.assert_close(out[:, :12], x, rtol=0, atol=0)
    torch.testing.assert_close(out[:, 12:], expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(
    "num_sets, exclude_self, mean",
    [(1, True, False), (1, True, True), (1, False, False), (4, True, True), (4, False, True), (5, True, False)],
)
def test_module_init_from_batch_scale_and_bias(dtype, num_sets, exclude_self, mean):
    torch.manual_seed(5)
    kw = dict(num_sets=num_sets, exclude_self=exclude_self, mean=mean, bias=True, init_std=0.05)
    m = bg.MinibatchDiscrimination(9, 7, 4, **kw).to(dtype)
    x = 3 * torch.randn(60, 9, dtype=dtype)
    m.init_from_batch(x)
    M = (x.double() @ m.T.detach().double().view(9, -1)).view(60, 7, 4)
    rtol = 1e-12 if dtype == torch.float64 else 2e-6  # T is rescaled in float64, then rounded to dtype
    # Nearest other sample of the set at L1 distance 2 on average, for every kernel.
    torch.testing.assert_close(_half_mean_min_l1(M, num_sets), torch.ones(7, dtype=torch.float64), rtol=rtol, atol=0)
    # The bias centres the features as the module computes them (its num_sets / exclude_self / mean).
    o = pairwise_l1_features_reference(M, num_sets, exclude_self, mean)
    atol = 1e-12 if dtype == torch.float64 else 1e-5
    zeros = torch.zeros(7, dtype=torch.float64)
    torch.testing.assert_close((o + m.bias.detach().double()).mean(0), zeros, rtol=0, atol=atol)
    torch.testing.assert_close(m(x)[:, 9:].mean(0), zeros.to(dtype), rtol=0, atol=atol)


def test_module_init_from_batch_without_bias_and_independent_of_init_std():
    x = torch.randn(30, 6, dtype=torch.float64)
    outs = []
    for std in (1.0, 0.05):
        torch.manual_seed(6)  # the same draws, scaled by std
        m = bg.MinibatchDiscrimination(6, 4, 3, init_std=std).double()
        m.init_from_batch(x)
        assert m.bias is None
        outs.append(m(x))
    # T is drawn in float32 (then converted): the two draws differ by float32 rounding only.
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-6, atol=1e-6)


def test_module_init_from_batch_split_populations():
    torch.manual_seed(7)
    m = bg.MinibatchDiscrimination(5, 3, 2, mean=True, bias=True, init_std=0.05, num_populations=2).double()
    x = torch.randn(16, 5, dtype=torch.float64)
    split = torch.tensor([0, 1] * 8)
    with pytest.raises(ValueError, match="split"):
        m.init_from_batch(x)
    m.init_from_batch(x, split)
    M = (x @ m.T.detach().view(5, -1)).view(16, 3, 2)
    torch.testing.assert_close(_half_mean_min_l1(M, 1), torch.ones(3, dtype=torch.float64), rtol=1e-12, atol=0)
    o = pairwise_l1_features_reference(M, mean=True, split=split).flatten(1)  # population-major, as the bias
    torch.testing.assert_close((o + m.bias.detach()).mean(0), torch.zeros(6, dtype=torch.float64), rtol=0, atol=1e-12)


def test_module_init_from_batch_bad_input():
    m = bg.MinibatchDiscrimination(5, 3, 2, bias=True, init_std=0.05)
    T0, b0 = m.T.detach().clone(), m.bias.detach().clone()
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 5\), got \(4, 6\)"):
        m.init_from_batch(torch.randn(4, 6))
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 5\)"):
        m.init_from_batch(torch.randn(4, 5, 1))
    with pytest.raises(ValueError, match="x: the data-dependent init needs at least 2 samples per set"):
        m.init_from_batch(torch.randn(1, 5))  # no other sample
    with pytest.raises(ValueError, match="at least 2 samples per set"):
        m.init_from_batch(torch.randn(0, 5))
    with pytest.raises(ValueError, match="split: pass population labels exactly when"):
        m.init_from_batch(torch.randn(4, 5), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"x: kernels \[0, 1, 2\] have a mean nearest-neighbour L1 distance of 0"):
        m.init_from_batch(torch.ones(6, 5))  # all samples coincide
    with pytest.raises(ValueError, match=r"x: kernels \[.*\] .* non-finite"):
        m.init_from_batch(torch.full((6, 5), float("nan")))
    sets_of_one = bg.MinibatchDiscrimination(5, 3, 2, num_sets=4)
    with pytest.raises(ValueError, match=r"at least 2 samples per set .* batch of 4 in 4 sets"):
        sets_of_one.init_from_batch(torch.randn(4, 5))
    with pytest.raises(ValueError, match="num_sets: the batch of 6 samples does not split into 4 sets"):
        sets_of_one.init_from_batch(torch.randn(6, 5))
    # A failed init leaves the parameters untouched.
    assert torch.equal(m.T.detach(), T0) and torch.equal(m.bias.detach(), b0)


def test_module_split_populations():
    m = bg.MinibatchDiscrimination(5, 3, 2, mean=True, num_populations=2)
    x = torch.randn(8, 5)
    split = torch.tensor([0] * 4 + [1] * 4)
    out = m(x, split)
    assert out.shape == (8, 5 + 6) and m.output_features == 11
    M = (x @ m.T.view(5, -1)).view(8, 3, 2)
    torch.testing.assert_close(out[:, 5:], pairwise_l1_features_reference(M, mean=True, split=split).flatten(1))
    with pytest.raises(ValueError, match="split"):
        m(x)


@pytest.mark.parametrize(
    "M, kwargs, message",
    [
        (torch.randn(4, 3), dict(), r"M: expected a 3-d tensor \(N, B, C\)"),
        (torch.randn(2, 4, 3, 1), dict(), r"M: expected a 3-d tensor"),
        (torch.randn(0, 3, 2), dict(), "M: expected a non-empty batch"),
        (torch.randn(6, 3, 2), dict(num_sets=4), "num_sets: the batch of 6 samples does not split into 4"),
        (torch.randn(6, 3, 2), dict(num_sets=0), "num_sets: expected a positive number"),
        (torch.randint(0, 3, (6, 3, 2)), dict(), "M: expected a float32"),
        (
            torch.randn(6, 3, 2),
            dict(split=torch.zeros(5, dtype=torch.long)),
            r"split: expected a 1-d tensor of 6 labels",
        ),
        (torch.randn(6, 3, 2), dict(split=torch.tensor([0, 1, 2, 0, 1, 0])), r"split: expected labels in \[0, 2\)"),
        (torch.randn(6, 3, 2), dict(split=torch.tensor([0, 1, -1, 0, 1, 0])), r"split: expected labels in"),
        (torch.randn(6, 3, 2), dict(split=torch.zeros(6)), "split: expected integer"),
        (
            torch.randn(6, 3, 2),
            dict(split=torch.zeros(6, dtype=torch.long), num_populations=9),
            "num_populations: expected a value in",
        ),
        (
            torch.randn(6, 3, 2),
            dict(split=torch.zeros(6, dtype=torch.long, device="meta")),
            "split: expected a tensor on the same device",
        ),
    ],
)
def test_pairwise_bad_input(M, kwargs, message):
    with pytest.raises(RuntimeError, match=message):
        bg.pairwise_l1_features(M, **kwargs)


def test_pairwise_bad_backward_grad_and_module_input():
    M = torch.randn(4, 3, 2)
    with pytest.raises(RuntimeError, match=r"grad: expected the shape of the features \[4, 3\]"):
        torch.ops.batchgan._pairwise_l1_features_backward(torch.randn(4, 2), M, 1, True, False, None, 1)
    with pytest.raises(RuntimeError, match="num_populations: expected 1 when split is None"):
        torch.ops.batchgan.pairwise_l1_features(M, 1, True, False, None, 2)
    m = bg.MinibatchDiscrimination(5, 3, 2)
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 5\)"):
        m(torch.randn(4, 6))
    with pytest.raises(RuntimeError, match="M: expected a non-empty batch"):
        m(torch.randn(0, 5))
    with pytest.raises(ValueError, match="kernel_dims: expected a positive integer"):
        bg.MinibatchDiscrimination(5, 3, 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize(
    "n, b, c, num_sets, with_split",
    [
        (1, 2, 3, 1, False),  # N = 1
        (3, 2, 2, 3, False),  # sets of one sample
        (37, 2, 5, 1, False),  # not a multiple of the sample tiles (32 forward, 8 backward)
        (130, 1, 3, 1, True),  # two row blocks (128 rows each), three j slices, ragged last tile
        (20, 3, 35, 2, True),  # C over three 16-dim chunks: the backward restages them per tile
        (33, 2, 16, 1, False),  # C = one whole chunk: the backward's sums stay in registers
        (24, 1, 17, 2, False),  # one dim past a chunk, one population
        (150, 1, 20, 1, False),  # three j slices, each adding two chunks of dims to its gradient
    ],
)
def test_emulated_pairwise_matches_cpu(emulated, dtype, n, b, c, num_sets, with_split):
    M = _m(n, b, c, dtype)
    split = torch.randint(0, 3, (n,)) if with_split else None
    P = 3 if with_split else 1
    for exclude_self, mean in [(True, True), (False, False)]:
        args = (num_sets, exclude_self, mean, split, P)
        out = emulated.pairwise_l1_features(M, *args)
        expected = torch.ops.batchgan.pairwise_l1_features(M, *args)
        torch.testing.assert_close(out, expected, **PAIR_TOLERANCES[dtype])
        grad = torch.randn(expected.shape).to(dtype)
        got = emulated._pairwise_l1_features_backward(grad, M, *args)
        ref = torch.ops.batchgan._pairwise_l1_features_backward(grad, M, *args)
        tol = PAIR_TOLERANCES[dtype] if dtype != torch.float32 else dict(rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(got, ref, **tol)


def test_emulated_pairwise_rejects_bad_input_like_cpu(emulated):
    with pytest.raises(RuntimeError, match="num_sets: the batch of 6 samples"):
        emulated.pairwise_l1_features(torch.randn(6, 2, 2), 4, True, False, None, 1)


def test_module_set_size_follows_the_batch():
    """set_size=S is num_sets=N/S for every batch of N (one module for batches of any multiple of S)."""
    by_size = bg.MinibatchDiscrimination(5, 3, 2, mean=True, set_size=4)
    for n in (4, 8, 12):
        by_count = bg.MinibatchDiscrimination(5, 3, 2, mean=True, num_sets=n // 4)
        by_count.T.data.copy_(by_size.T)
        x = torch.randn(n, 5)
        torch.testing.assert_close(by_size(x), by_count(x))
    assert "set_size=4" in repr(by_size) and "num_sets" not in repr(by_size)
    with pytest.raises(ValueError, match="set_size: the batch of 6 samples does not split into sets of 4"):
        by_size(torch.randn(6, 5))
    with pytest.raises(ValueError, match="set_size: the batch of 6 samples does not split into sets of 4"):
        by_size.init_from_batch(torch.randn(6, 5))
    with pytest.raises(ValueError, match="set_size, num_sets: give at most one of them"):
        bg.MinibatchDiscrimination(5, 3, 2, num_sets=2, set_size=4)
    with pytest.raises(ValueError, match="set_size"):
        bg.MinibatchDiscrimination(5, 3, 2, set_size=0)
