"""sample_mixing: batch smoothing-gamma (BGAN paper, section 3.1)."""

import pytest
import torch

import batchgan_ext as bg


@pytest.mark.parametrize("gamma", [0.0, 0.1, 0.3, 0.5])
def test_sample_mixing_ratio_support_and_mean(gamma):
    # With one huge set per draw, #beta/B concentrates on p, so the targets trace the support
    # [0, gamma] U [1 - gamma, 1] of p.
    g = torch.Generator().manual_seed(1)
    draws = 400
    beta, target = bg.sample_mixing(draws * 4000, num_sets=draws, gamma=gamma, generator=g)
    assert beta.dtype == torch.bool and beta.shape == (draws * 4000,)
    assert target.shape == (draws,) and target.dtype == torch.float32
    torch.testing.assert_close(target, beta.view(draws, 4000).float().mean(1))
    slack = 0.03  # binomial noise of a 4000-sample set
    in_support = (target <= gamma + slack) | (target >= 1 - gamma - slack)
    assert bool(in_support.all())
    # Symmetric prior: mean 1/2, both intervals equally likely.
    assert abs(target.mean().item() - 0.5) < 0.06
    low = (target < 0.5).float().mean().item()
    assert 0.4 < low < 0.6
    if gamma == 0.5:
        # p uniform on [0, 1]: the targets' variance is close to 1/12.
        assert abs(target.var().item() - 1 / 12) < 0.015
    if gamma == 0.0:
        assert set(target.unique().tolist()) <= {0.0, 1.0}


def test_sample_mixing_sets_are_independent():
    g = torch.Generator().manual_seed(2)
    _, target = bg.sample_mixing(2 * 500 * 64, num_sets=2 * 500, gamma=0.5, generator=g)
    pairs = target.view(500, 2)
    corr = torch.corrcoef(pairs.T)[0, 1].item()
    assert abs(corr) < 0.15
    # Each group's ratio comes from its own beta slice.
    beta, target = bg.sample_mixing(12, num_sets=3, gamma=0.5, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(target, beta.view(3, 4).float().mean(1))


def test_sample_mixing_is_deterministic_under_a_generator():
    a = bg.sample_mixing(64, 4, 0.3, generator=torch.Generator().manual_seed(7))
    b = bg.sample_mixing(64, 4, 0.3, generator=torch.Generator().manual_seed(7))
    c = bg.sample_mixing(64, 4, 0.3, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(batch_size=0), "batch_size"),
        (dict(batch_size=10, num_sets=3), "num_sets"),
        (dict(batch_size=10, num_sets=0), "num_sets"),
        (dict(batch_size=10, gamma=0.7), "gamma"),
        (dict(batch_size=10, gamma=-0.1), "gamma"),
    ],
)
def test_sample_mixing_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        bg.sample_mixing(**kwargs)
