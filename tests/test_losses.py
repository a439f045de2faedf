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


@pytest.mark.parametrize("name", LOSSES.names())
def test_losses_are_finite_with_gradients_at_extreme_logits(name):
    real = torch.tensor([-200.0, 200.0], requires_grad=True)
    fake = torch.tensor([200.0, -200.0], requires_grad=True)
    l = loss(name)
    total = l.d_loss(real, fake) + l.g_loss(fake, real)
    total.backward()
    assert torch.isfinite(total) and torch.isfinite(real.grad).all() and torch.isfinite(fake.grad).all()


def test_unknown_loss_lists_choices():
    from gankit.errors import ConfigError

    from gankit.registry import LOSSES

    with pytest.raises(ConfigError, match="unknown loss 'nope'") as raised:
        loss("nope")
    assert all(name in str(raised.value) for name in LOSSES.names())


def test_rpgan_matches_huang_et_al_on_hand_made_logits():
    # D(x) = [2, 0], D(G(z)) = [1, 3]: the pairs' differences are 1 and -3.
    real, fake = torch.tensor([2.0, 0.0], dtype=torch.float64), torch.tensor([1.0, 3.0], dtype=torch.float64)
    l = loss("rpgan")
    expected_d = (math.log(1 + math.exp(-1.0)) + math.log(1 + math.exp(3.0))) / 2  # -log sigmoid(D(x) - D(G(z)))
    expected_g = (math.log(1 + math.exp(1.0)) + math.log(1 + math.exp(-3.0))) / 2  # -log sigmoid(D(G(z)) - D(x))
    assert l.d_loss(real, fake).item() == pytest.approx(expected_d, rel=1e-12)
    assert l.g_loss(fake, real).item() == pytest.approx(expected_g, rel=1e-12)
    assert l.needs_real_in_g and not l.batch_coupled
    # pairing: the loss depends on which real sample meets which fake one
    assert l.d_loss(real.flip(0), fake).item() != pytest.approx(expected_d)


def test_ragan_matches_jolicoeur_martineau_on_hand_made_logits():
    # C(x_r) = [2, 0] (mean 1), C(x_f) = [1, 3] (mean 2); D~(x_r) = sigmoid(C(x_r) - mean C(x_f)),
    # D~(x_f) = sigmoid(C(x_f) - mean C(x_r)).
    real, fake = torch.tensor([2.0, 0.0], dtype=torch.float64), torch.tensor([1.0, 3.0], dtype=torch.float64)
    sig = lambda t: 1 / (1 + math.exp(-t))  # noqa: E731
    d_real = [sig(2 - 2), sig(0 - 2)]
    d_fake = [sig(1 - 1), sig(3 - 1)]
    expected_d = -sum(math.log(p) for p in d_real) / 2 - sum(math.log(1 - p) for p in d_fake) / 2
    expected_g = -sum(math.log(p) for p in d_fake) / 2 - sum(math.log(1 - p) for p in d_real) / 2
    l = loss("ragan")
    assert l.d_loss(real, fake).item() == pytest.approx(expected_d, rel=1e-12)
    assert l.g_loss(fake, real).item() == pytest.approx(expected_g, rel=1e-12)
    assert l.needs_real_in_g and l.batch_coupled


@pytest.mark.parametrize("name", ["rpgan", "ragan"])
def test_relativistic_losses_are_antisymmetric_in_the_players(name):
    """Swapping the roles of real and fake turns D's loss into G's: each player wants its samples to score higher."""
    l = loss(name)
    torch.testing.assert_close(l.d_loss(REAL, FAKE), l.g_loss(REAL, FAKE))
    torch.testing.assert_close(l.g_loss(FAKE, REAL), l.d_loss(FAKE, REAL))


def test_every_loss_takes_the_real_outputs_in_g_only_when_it_declares_it():
    for name in LOSSES.names():
        l = loss(name)
        if l.needs_real_in_g:
            assert torch.isfinite(l.g_loss(FAKE, REAL))
        else:  # the same value with or without the real outputs: they are not used
            torch.testing.assert_close(l.g_loss(FAKE), l.g_loss(FAKE, REAL))
