"""The convnet model (plain convolutions with explicit kernels/strides) and the [0, 1]-pixel mappings of mlp and
convnet, checked against networks written out by hand in the shape of afshindini/GAN-Methods-with-Pytorch
(Methods/DCGAN/DCGAN.py, WGAN.py, GAN/GAN.py)."""
import re

import pytest
import torch
from torch import nn

from gankit.errors import ConfigError
from gankit.registry import MODELS, load_builtins

load_builtins()
Z = 64
MNIST = (1, 28, 28)
G_SPEC = {"name": "convnet", "widths": [256, 128, 64], "kernels": [3, 4, 3, 4], "strides": [2, 1, 2, 2]}
D_SPEC = {"name": "convnet", "widths": [16, 32], "kernels": [4, 4, 4], "strides": [2, 2, 2]}


def hand_generator(z_dim: int = Z, hidden: int = 64) -> nn.Sequential:
    """The reference DCGAN generator, block by block: ConvTranspose2d + BatchNorm2d + ReLU, last one + Tanh."""
    def block(c_in, c_out, k, s, last=False):
        layers = [nn.ConvTranspose2d(c_in, c_out, k, s)]
        return layers + ([nn.Tanh()] if last else [nn.BatchNorm2d(c_out), nn.ReLU()])
    return nn.Sequential(*block(z_dim, hidden * 4, 3, 2), *block(hidden * 4, hidden * 2, 4, 1),
                         *block(hidden * 2, hidden, 3, 2), *block(hidden, 1, 4, 2, last=True))


def hand_discriminator(hidden: int = 16) -> nn.Sequential:
    """The reference DCGAN critic: Conv2d + BatchNorm2d + LeakyReLU(0.2) twice, then Conv2d to one channel."""
    return nn.Sequential(nn.Conv2d(1, hidden, 4, 2), nn.BatchNorm2d(hidden), nn.LeakyReLU(0.2),
                         nn.Conv2d(hidden, hidden * 2, 4, 2), nn.BatchNorm2d(hidden * 2), nn.LeakyReLU(0.2),
                         nn.Conv2d(hidden * 2, 1, 4, 2))


def build(spec, role, shape=MNIST, z_dim=Z):
    return MODELS.build(dict(spec), f"model.{role}", role, shape, z_dim)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("role, spec, hand", [
    ("generator", G_SPEC, hand_generator()),
    ("discriminator", D_SPEC, hand_discriminator(16)),
    ("discriminator", {**D_SPEC, "widths": [64, 128]}, hand_discriminator(64)),  # the WGAN critic
])
def test_convnet_is_the_hand_written_network(role, spec, hand):
    """Same parameter count, same parameters in the same order, same outputs in training and evaluation mode."""
    torch.manual_seed(0)
    net = build(spec, role)
    assert n_params(net) == n_params(hand)
    with torch.no_grad():
        for mine, theirs in zip(net.parameters(), hand.parameters(), strict=True):
            assert mine.shape == theirs.shape
            theirs.copy_(mine)
    x = torch.randn(32, Z) if role == "generator" else torch.rand(32, *MNIST) * 2 - 1
    hand_input = x.view(32, Z, 1, 1) if role == "generator" else x  # the reference feeds z as a 1x1 map
    out = net(x)
    torch.testing.assert_close(out, hand(hand_input).reshape(out.shape))
    net.eval(), hand.eval()
    torch.testing.assert_close(net(x), hand(hand_input).reshape(out.shape))


def test_seed_004_parameter_counts():
    """The DCGAN generator and critic of that code (its hidden_dim 64; D uses hidden_dim / 4)."""
    assert n_params(build(G_SPEC, "generator")) == 747_841
    assert n_params(build(D_SPEC, "discriminator")) == 9_105


@pytest.mark.parametrize("bn_scale_mean", [0.0, 1.0])
def test_normal_init_statistics(bn_scale_mean):
    """init: normal draws conv weights N(0, 0.02^2) and batch-norm scales N(bn_scale_mean, 0.02^2), shifts 0;
    conv biases keep PyTorch's default (uniform in +-1/sqrt(fan_in), not zero)."""
    torch.manual_seed(0)
    g = build({**G_SPEC, "bn_scale_mean": bn_scale_mean}, "generator")
    convs = [m for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
    weights = torch.cat([m.weight.flatten() for m in convs])
    assert abs(weights.std().item() - 0.02) < 0.001 and abs(weights.mean().item()) < 0.001
    assert any(m.bias.abs().max() > 0 for m in convs)
    bns = [m for m in g.modules() if isinstance(m, nn.BatchNorm2d)]
    scales = torch.cat([m.weight for m in bns])
    assert abs(scales.mean().item() - bn_scale_mean) < 0.005 and abs(scales.std().item() - 0.02) < 0.005
    assert all((m.bias == 0).all() for m in bns)
    default = build({**G_SPEC, "init": "default"}, "generator")
    assert all((m.weight == 1).all() for m in default.modules() if isinstance(m, nn.BatchNorm2d))


def test_sigmoid_output_and_unit_pixels_round_trip():
    """G's sigmoid image sigmoid(a) in [0, 1] is handed on as 2 * sigmoid(a) - 1; a D with unit_pixels reads
    (x + 1) / 2, so that pair sees exactly the reference's sigmoid(a). Same for mlp and convnet."""
    torch.manual_seed(0)
    z = torch.randn(8, Z)
    tanh_g = build(G_SPEC, "generator").eval()
    sigmoid_g = build({**G_SPEC, "output": "sigmoid"}, "generator").eval()
    sigmoid_g.load_state_dict(tanh_g.state_dict())
    pre = torch.atanh(tanh_g(z).clamp(-1 + 1e-6, 1 - 1e-6).double())  # G's last pre-activation
    torch.testing.assert_close(sigmoid_g(z).double(), 2 * pre.sigmoid() - 1, atol=1e-4, rtol=0)
    for spec in (D_SPEC, {"name": "mlp", "widths": [32, 16], "activation": "leaky_relu"}):
        plain, unit = build(spec, "discriminator").eval(), build({**spec, "unit_pixels": True}, "discriminator").eval()
        unit.load_state_dict(plain.state_dict())
        x = torch.rand(8, *MNIST) * 2 - 1
        torch.testing.assert_close(unit(x), plain((x + 1) / 2))


def hand_vanilla_gan(z_dim: int = Z) -> tuple[nn.Sequential, nn.Sequential]:
    """The reference vanilla GAN: G Linear + BatchNorm1d + ReLU blocks to 1024, Linear to 784, Sigmoid; D Linear
    + LeakyReLU(0.2) blocks 512, 256, 128, Linear to 1."""
    sizes, g_layers = [z_dim, 128, 256, 512, 1024], []
    for a, b in zip(sizes[:-1], sizes[1:]):
        g_layers += [nn.Linear(a, b), nn.BatchNorm1d(b), nn.ReLU()]
    g = nn.Sequential(*g_layers, nn.Linear(1024, 784), nn.Sigmoid())
    sizes, d_layers = [784, 512, 256, 128], []
    for a, b in zip(sizes[:-1], sizes[1:]):
        d_layers += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
    return g, nn.Sequential(nn.Flatten(), *d_layers, nn.Linear(128, 1))


def test_mlp_is_the_reference_vanilla_gan():
    """The hidden linears before a batch norm drop the bias that the norm cancels, so G has 128 + 256 + 512 + 1024
    fewer parameters than that code and computes the same function: with its weights copied over, the same
    images (the reference's sigmoid pixels p come out as 2p - 1) and, through unit_pixels, the same D scores."""
    torch.manual_seed(0)
    hand_g, hand_d = hand_vanilla_gan()
    g = build({"name": "mlp", "widths": [128, 256, 512, 1024], "batch_norm": True, "output": "sigmoid"}, "generator")
    d = build({"name": "mlp", "widths": [512, 256, 128], "activation": "leaky_relu", "unit_pixels": True},
              "discriminator")
    assert n_params(g) == n_params(hand_g) - (128 + 256 + 512 + 1024)
    assert n_params(d) == n_params(hand_d)
    with torch.no_grad():
        for mine, theirs in zip(d.parameters(), hand_d.parameters(), strict=True):
            theirs.copy_(mine)
        hand_linears = [m for m in hand_g if isinstance(m, nn.Linear)]
        hand_norms = [m for m in hand_g if isinstance(m, nn.BatchNorm1d)]
        for mine, theirs in zip(g.hidden, hand_linears[:-1], strict=True):
            theirs.weight.copy_(mine.weight)
        for mine, theirs in zip(g.norms, hand_norms, strict=True):
            theirs.load_state_dict(mine.state_dict())
        hand_linears[-1].load_state_dict(g.out.state_dict())
    z = torch.randn(64, Z)
    images = g(z)
    torch.testing.assert_close(images, 2 * hand_g(z).view(64, *MNIST) - 1)
    torch.testing.assert_close(d(images), hand_d((images + 1) / 2).squeeze(1))


@pytest.mark.parametrize("role, spec, needle", [
    ("generator", {**G_SPEC, "kernels": [3, 4, 3]}, "model.generator.kernels must have len(widths) + 1 = 4"),
    ("generator", {**G_SPEC, "strides": [2, 2, 2, 2]}, "model.generator.kernels and strides give G maps of side"),
    ("discriminator", {**D_SPEC, "strides": [1, 1, 1]}, "the last layer must see a 1x1 map"),
    ("discriminator", {**D_SPEC, "kernels": [4, 4, 40]}, "the last layer must see a 1x1 map"),
    ("generator", {**G_SPEC, "widths": [256, 0, 64]}, "model.generator.widths[1]"),
    ("generator", {**G_SPEC, "unit_pixels": True}, "model.generator.unit_pixels is D's input mapping"),
    ("discriminator", {**D_SPEC, "output": "sigmoid"}, "model.discriminator.output is G's image output"),
    ("generator", {**G_SPEC, "init_std": 0}, "model.generator.init_std"),
    ("generator", {**G_SPEC, "output": "relu"}, "model.generator.output"),
    ("discriminator", {"name": "mlp", "output": "tanh"}, "model.discriminator.output is G's sample output"),
    ("generator", {"name": "mlp", "unit_pixels": True}, "model.generator.unit_pixels is D's input mapping"),
])
def test_bad_params_are_config_errors_naming_the_key(role, spec, needle):
    with pytest.raises(ConfigError, match=re.escape(needle)):
        build(spec, role)


@pytest.mark.parametrize("shape, needle", [((3, 32, 28), "needs square images"), ((2,), "needs square images")])
def test_unsupported_data_is_a_config_error(shape, needle):
    with pytest.raises(ConfigError, match=needle):
        build(D_SPEC, "discriminator", shape)


def test_conditional_convnet_is_refused():
    with pytest.raises(ConfigError, match="which is unconditional"):
        MODELS.build(dict(G_SPEC), "model.generator", "generator", MNIST, Z, 10)


def test_garbage_through_the_command_line_is_one_line():
    from gankit_testing import assert_user_error, run_cli_here as run_cli  # in this process

    result = run_cli("train", "ring_gan", "train.steps=1", "model.discriminator.unit_pixels=maybe")
    assert_user_error(result, "model.discriminator.unit_pixels")
