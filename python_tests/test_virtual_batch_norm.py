"""VirtualBatchNorm1d/2d against a naive reference that concatenates the reference batch with each
sample and batch-normalises that (Salimans et al. 2016, section 3.5), forward and gradients."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import batchgan_ext
from batchgan_ext import VirtualBatchNorm1d, VirtualBatchNorm2d, record_reference

# (layer class, per-sample shape) for every input layout the layers accept
LAYOUTS = [(VirtualBatchNorm1d, (3,)), (VirtualBatchNorm1d, (3, 5)), (VirtualBatchNorm2d, (3, 4, 2))]


def naive(reference, x, weight, bias, eps, include_sample):
    """Sample by sample: batch norm (training mode) of [reference; x_i], the row of x_i; or, without
    the sample, x_i normalised by the reference batch's own mean and biased variance."""
    rows = []
    dims = [0, *range(2, x.dim())]
    for i in range(x.shape[0]):
        if include_sample:
            both = torch.cat([reference, x[i : i + 1]])
            rows.append(F.batch_norm(both, None, None, weight, bias, True, 0.0, eps)[-1:])
        else:
            mean, var = reference.mean(dims), reference.var(dims, unbiased=False)
            shape = (1, -1) + (1,) * (x.dim() - 2)
            y = (x[i : i + 1] - mean.view(shape)) / torch.sqrt(var.view(shape) + eps)
            rows.append(y if weight is None else y * weight.view(shape) + bias.view(shape))
    return torch.cat(rows)


def make_layer(cls, include_sample=True, affine=True):
    layer = cls(3, eps=1e-3, affine=affine, include_sample=include_sample).double()
    if affine:
        with torch.no_grad():
            layer.weight.uniform_(0.5, 2.0)
            layer.bias.normal_()
    return layer


@pytest.mark.parametrize("include_sample", [True, False])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("cls,shape", LAYOUTS)
def test_forward_matches_naive_concatenation(cls, shape, include_sample, affine):
    layer = make_layer(cls, include_sample, affine)
    reference = torch.randn(6, *shape, dtype=torch.float64) * 2 + 1
    x = torch.randn(5, *shape, dtype=torch.float64) * 3 - 2
    out_reference = layer.set_reference(reference)
    expected = naive(reference, x, layer.weight, layer.bias, layer.eps, include_sample)
    torch.testing.assert_close(layer(x), expected, rtol=1e-10, atol=1e-12)
    # the reference batch itself is batch-normalised with its own statistics
    torch.testing.assert_close(
        out_reference, F.batch_norm(reference, None, None, layer.weight, layer.bias, True, 0.0, layer.eps)
    )


@pytest.mark.parametrize("include_sample", [True, False])
@pytest.mark.parametrize("cls,shape", LAYOUTS)
def test_gradients_gradcheck_and_naive(cls, shape, include_sample):
    layer = make_layer(cls, include_sample)
    reference = torch.randn(4, *shape, dtype=torch.float64, requires_grad=True)
    x = torch.randn(3, *shape, dtype=torch.float64, requires_grad=True)
    weight = layer.weight.detach().clone().requires_grad_()
    bias = layer.bias.detach().clone().requires_grad_()

    del layer.weight, layer.bias  # the affine parameters become inputs of the checked function

    def vbn(reference, x, weight, bias):
        layer.weight, layer.bias = weight, bias
        layer.set_reference(reference)
        return layer(x)

    assert torch.autograd.gradcheck(vbn, (reference, x, weight, bias))
    # and the same gradients as the naive concatenation (a random upstream gradient)
    upstream = torch.randn(3, *shape, dtype=torch.float64)
    got = torch.autograd.grad((vbn(reference, x, weight, bias) * upstream).sum(), (reference, x, weight, bias))
    want = torch.autograd.grad(
        (naive(reference, x, weight, bias, layer.eps, include_sample) * upstream).sum(), (reference, x, weight, bias)
    )
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("include_sample", [True, False])
@pytest.mark.parametrize("cls,shape", LAYOUTS)
def test_fused_path_equals_differentiable_path(cls, shape, include_sample):
    """Without a gradient on the statistics the layer runs F.batch_norm's fused kernel."""
    layer = make_layer(cls, include_sample).float()
    reference = torch.randn(8, *shape, requires_grad=True)
    x = torch.randn(6, *shape)
    layer.set_reference(reference)
    with_grad = layer(x)
    assert with_grad.requires_grad
    with torch.no_grad():
        layer.set_reference(reference)
        fused = layer(x)
    torch.testing.assert_close(fused, with_grad.detach(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cls,shape", LAYOUTS)
def test_sample_output_independent_of_its_batch(cls, shape):
    layer = make_layer(cls)
    layer.set_reference(torch.randn(7, *shape, dtype=torch.float64))
    x = torch.randn(6, *shape, dtype=torch.float64)
    out = layer(x)
    # other samples replaced, the batch permuted, or the sample alone: its row is the same
    other = torch.cat([x[:1], 10 * torch.randn(5, *shape, dtype=torch.float64)])
    torch.testing.assert_close(layer(other)[0], out[0], rtol=1e-12, atol=1e-12)
    perm = torch.randperm(6)
    torch.testing.assert_close(layer(x[perm]), out[perm], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(layer(x[2:3])[0], out[2], rtol=1e-12, atol=1e-12)
    # plain batch norm would not pass this: the property is not vacuous
    bn = F.batch_norm(x, None, None, training=True)
    assert not torch.allclose(F.batch_norm(other, None, None, training=True)[0], bn[0])


def test_record_reference_through_a_network_and_train_eval_alike():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(4, 3), VirtualBatchNorm1d(3), nn.ReLU(), nn.Linear(3, 2)).double()
    z_ref, z = torch.randn(10, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    with record_reference(net):
        net(z_ref)
    vbn = net[1]
    assert vbn.has_reference and not vbn.recording
    out = net(z)
    expected = net[3](torch.relu(naive(net[0](z_ref), net[0](z), vbn.weight, vbn.bias, vbn.eps, True)))
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-12)
    net.eval()
    torch.testing.assert_close(net(z), out)
    # the reference statistics carry the first layer's gradient: it differs from that of detached statistics
    grad = torch.autograd.grad(out.sum(), net[0].weight)[0]
    with record_reference(net):
        net(z_ref)
    mean, meansq, count = vbn._reference
    vbn._reference = (mean.detach(), meansq.detach(), count)
    grad_detached = torch.autograd.grad(net(z).sum(), net[0].weight)[0]
    assert not torch.allclose(grad, grad_detached)


def test_exported_like_set_batch_norm():
    assert {"VirtualBatchNorm1d", "VirtualBatchNorm2d", "record_reference"} <= set(batchgan_ext.__all__)
    assert batchgan_ext.VirtualBatchNorm2d is VirtualBatchNorm2d


def test_bad_inputs():
    layer = VirtualBatchNorm1d(3)
    with pytest.raises(ValueError, match="no reference batch yet"):
        layer(torch.randn(4, 3))
    with pytest.raises(ValueError, match=r"reference: expected a batch of shape \(N, 3\) or \(N, 3, L\)"):
        layer.set_reference(torch.randn(4, 2))
    with pytest.raises(ValueError, match="more than one value per channel"):
        layer.set_reference(torch.randn(1, 3))
    with pytest.raises(ValueError, match="floating-point"):
        layer.set_reference(torch.ones(4, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="non-empty"):
        layer.set_reference(torch.randn(0, 3))
    with pytest.raises(ValueError, match="expected a tensor"):
        layer.set_reference([[1.0, 2.0, 3.0]])
    layer.set_reference(torch.randn(4, 3))
    with pytest.raises(ValueError, match=r"x: expected a batch of shape"):
        layer(torch.randn(4, 3, 2, 2))
    with pytest.raises(ValueError, match=r"x: expected a batch of shape \(N, 3, H, W\)"):
        VirtualBatchNorm2d(3)(torch.randn(4, 3))
    for kwargs, match in [
        (dict(num_features=0), "num_features"),
        (dict(num_features=3, eps=0.0), "eps"),
        (dict(num_features=3, eps="1e-5"), "eps"),
        (dict(num_features=3, affine=1), "affine"),
        (dict(num_features=3, include_sample="yes"), "include_sample"),
    ]:
        with pytest.raises(ValueError, match=match):
            VirtualBatchNorm1d(**kwargs)
    with pytest.raises(ValueError, match="no VirtualBatchNorm"):
        with record_reference(nn.Linear(2, 2)):
            pass
    branchy = nn.ModuleDict({"a": VirtualBatchNorm1d(3), "b": VirtualBatchNorm1d(3)})
    with pytest.raises(ValueError, match=r"did not reach the VirtualBatchNorm layers \['b'\]"):
        with record_reference(branchy):
            branchy["a"](torch.randn(4, 3))
