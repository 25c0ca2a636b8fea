"""pack / Pack: PacGAN packing (Lin et al. 2018), m consecutive samples concatenated along dim 1."""

import pytest
import torch

import batchgan_ext as bg


def _cat_reference(x, m):
    """PacGAN's construction written out: packed sample i is the m samples i*m .. i*m+m-1 concatenated along dim 1."""
    return torch.stack([torch.cat([x[i * m + j] for j in range(m)], dim=0) for i in range(x.shape[0] // m)])


@pytest.mark.parametrize(
    "shape, m",
    [
        ((12, 2), 1),
        ((12, 2), 2),
        ((12, 2), 3),
        ((12, 2), 4),
        ((7, 5), 7),  # the whole batch in one pack
        ((8, 3, 5, 4), 2),  # images: channel concat
        ((9, 1, 4, 4), 3),
        ((6, 2, 3), 2),  # sequences
    ],
)
def test_pack_equals_cat_of_samples(shape, m):
    x = torch.randn(shape, dtype=torch.float64)
    out = bg.pack(x, m)
    assert out.shape == (shape[0] // m, m * shape[1], *shape[2:])
    torch.testing.assert_close(out, _cat_reference(x, m), rtol=0, atol=0)
    torch.testing.assert_close(bg.Pack(m)(x), out, rtol=0, atol=0)


def test_pack_vectors_layout():
    # (N, F) -> (N/m, m*F): the first packed sample holds samples 0 and 1 side by side.
    x = torch.tensor([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0], [6.0, 7.0]])
    assert torch.equal(bg.pack(x, 2), torch.tensor([[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]]))


def test_pack_is_a_view_when_contiguous_and_correct_when_not():
    x = torch.randn(8, 3, 4, 4)
    out = bg.pack(x, 4)
    assert out.data_ptr() == x.data_ptr() and out._base is x
    # A non-contiguous batch (a transposed view, channels_last) still packs correctly.
    xt = torch.randn(4, 4, 3, 8).permute(3, 2, 0, 1)
    torch.testing.assert_close(bg.pack(xt, 2), _cat_reference(xt, 2), rtol=0, atol=0)
    xcl = torch.randn(6, 2, 3, 3).to(memory_format=torch.channels_last)
    torch.testing.assert_close(bg.pack(xcl, 3), _cat_reference(xcl, 3), rtol=0, atol=0)


def test_pack_gradients_flow_to_each_sample():
    x = torch.randn(6, 2, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 4, 3, dtype=torch.float64)
    (bg.pack(x, 2) * w).sum().backward()
    # d/dx of sum(pack(x) * w): sample 2i+j receives the j-th channel block of w[i].
    expected = torch.stack([w[i, 2 * j : 2 * j + 2] for i in range(3) for j in range(2)])
    torch.testing.assert_close(x.grad, expected, rtol=0, atol=0)
    torch.autograd.gradcheck(lambda t: bg.pack(t, 3), (x,))


def test_pack_discriminator_end_to_end():
    # A PacGAN2 discriminator for 2D points: D sees 2 points, 4 input features.
    torch.manual_seed(0)
    disc = torch.nn.Sequential(bg.Pack(2), torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    x = torch.randn(10, 2, requires_grad=True)
    out = disc(x)
    assert out.shape == (5, 1)
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert "packing=2" in repr(disc)


@pytest.mark.parametrize(
    "x, packing, message",
    [
        (torch.randn(4, 2), 0, "packing: expected a positive integer"),
        (torch.randn(4, 2), -2, "packing: expected a positive integer"),
        (torch.randn(4, 2), True, "packing: expected an integer, got True of type bool"),
        (torch.randn(4, 2), 2.0, "packing: expected an integer, got 2.0 of type float"),
        (torch.randn(4, 2), "2", "packing: expected an integer"),
        (torch.randn(4), 2, r"x: expected a batch of shape \(N, C, ...\) with at least 2 dims, got shape \(4,\)"),
        (torch.tensor(1.0), 1, r"x: expected a batch .* got shape \(\)"),
        (torch.randn(0, 2), 2, "x: expected a non-empty batch"),
        (torch.randn(6, 2), 4, "packing: the batch of N=6 samples does not split into packs of packing=4"),
        ([[1.0, 2.0]], 1, "x: expected a tensor, got list"),
    ],
)
def test_pack_bad_input(x, packing, message):
    with pytest.raises(ValueError, match=message):
        bg.pack(x, packing)


def test_pack_module_bad_packing():
    with pytest.raises(ValueError, match="packing: expected a positive integer"):
        bg.Pack(0)
    with pytest.raises(ValueError, match="packing: expected an integer"):
        bg.Pack(False)
    with pytest.raises(ValueError, match="packing: the batch of N=3 samples"):
        bg.Pack(2)(torch.randn(3, 2))
