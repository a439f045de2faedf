"""Each loss against its textbook formula, written with probabilities instead of logits."""
import math

import pytest
import torch

from gankit.registry import LOSSES, load_builtins

load_builtins()
torch.manual_seed(0)
REAL = torch.randn(64, dtype=torch.float64)
FAKE = torch.randn(64, dtype=torch.float64) - 0.5


def loss(name, **kw):
    return LOSSES.build({"name": name, **kw}, "loss")


def test_minimax_matches_goodfellow():
    l = loss("gan")
    d_real, d_fake = torch.sigmoid(REAL), torch.sigmoid(FAKE)
    expected_d = -(torch.log(d_real).mean() + torch.log(1 - d_fake).mean())
    torch.testing.assert_close(l.d_loss(REAL, FAKE), expected_d)
    torch.testing.assert_close(l.g_loss(FAKE), torch.log(1 - d_fake).mean())


def test_non_saturating_g_loss():
    l = loss("ns")
    torch.testing.assert_close(l.g_loss(FAKE), -torch.log(torch.sigmoid(FAKE)).mean())
    torch.testing.assert_close(l.d_loss(REAL, FAKE), loss("gan").d_loss(REAL, FAKE))


def test_gan_d_loss_at_an_uninformed_discriminator_is_2_log_2():
    zeros = torch.zeros(8)
    assert loss("gan").d_loss(zeros, zeros).item() == pytest.approx(2 * math.log(2))


def test_wgan():
    l = loss("wgan")
    torch.testing.assert_close(l.d_loss(REAL, FAKE), FAKE.mean() - REAL.mean())
    torch.testing.assert_close(l.g_loss(FAKE), -FAKE.mean())


def test_lsgan_targets_follow_mao_et_al():
    l = loss("lsgan")
    torch.testing.assert_close(l.d_loss(REAL, FAKE), 0.5 * ((REAL - 1) ** 2).mean() + 0.5 * (FAKE**2).mean())
    torch.testing.assert_close(l.g_loss(FAKE), 0.5 * ((FAKE - 1) ** 2).mean())
    # D is perfect when it outputs 1 on real data and 0 on fakes; G is done when D says 1 on fakes.
    assert l.d_loss(torch.ones(4), torch.zeros(4)).item() == 0
    assert l.g_loss(torch.ones(4)).item() == 0
    assert loss("lsgan", real_target=0.5).d_loss(torch.full((4,), 0.5), torch.zeros(4)).item() == 0


def test_hinge():
    l = loss("hinge")
    torch.testing.assert_close(l.d_loss(REAL, FAKE), torch.relu(1 - REAL).mean() + torch.relu(1 + FAKE).mean())
    torch.testing.assert_close(l.g_loss(FAKE), -FAKE.mean())
    assert l.d_loss(torch.full((3,), 2.0), torch.full((3,), -2.0)).item() == 0


@pytest.mark.parametrize("name", ["gan", "ns", "wgan", "lsgan", "hinge"])
def test_losses_are_finite_with_gradients_at_extreme_logits(name):
    real = torch.tensor([-200.0, 200.0], requires_grad=True)
    fake = torch.tensor([200.0, -200.0], requires_grad=True)
    l = loss(name)
    total = l.d_loss(real, fake) + l.g_loss(fake)
    total.backward()
    assert torch.isfinite(total) and torch.isfinite(real.grad).all() and torch.isfinite(fake.grad).all()


def test_unknown_loss_lists_choices():
    from gankit.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown loss 'nope'.*gan, hinge, lsgan, ns, veegan, wgan"):
        loss("nope")
