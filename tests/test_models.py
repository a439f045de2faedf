"""The image models: dcgan at every supported resolution and channel count, and mlp on images."""
import copy
import re

import pytest
import torch
from torch import nn

from gankit.errors import ConfigError
from gankit.models.dcgan import FP32Conv2d, FP32ConvTranspose2d
from gankit.registry import MODELS, load_builtins

load_builtins()
Z = 16
SHAPES = [(c, r, r) for r in (28, 32, 64) for c in (1, 3)]
CONVS = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)


def build(role, shape=(3, 32, 32), z_dim=Z, **params):
    params.setdefault("width", 4)
    where = f"model.{role}"
    return MODELS.build({"name": "dcgan", **params}, where, role, shape, z_dim)


def convs(model):
    return [m for m in model.modules() if isinstance(m, CONVS)]


def bns(model):
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_shapes_and_range(shape):
    torch.manual_seed(0)
    g, d = build("generator", shape), build("discriminator", shape)
    x = g(torch.randn(5, Z))
    assert x.shape == (5, *shape) and x.dtype == torch.float32
    assert x.abs().max() <= 1
    out = d(x)
    assert out.shape == (5,) and out.dtype == torch.float32
    assert d(torch.rand(1, *shape) * 2 - 1).shape == (1,)


@pytest.mark.parametrize("resolution, maps", [(28, [7, 14]), (32, [4, 8, 16]), (64, [4, 8, 16, 32])])
def test_default_multipliers_and_feature_maps(resolution, maps):
    """The default multipliers double the channels at each halving of the resolution (1 at the image end)."""
    shape = (3, resolution, resolution)
    g, d = build("generator", shape, width=2), build("discriminator", shape, width=2)
    n = len(maps)
    expected = [(2 * 2 ** (n - 1 - i), s, s) for i, s in enumerate(maps)]  # G's maps, low resolution first
    seen = []
    for m in g.net:
        if isinstance(m, nn.ReLU):
            m.register_forward_hook(lambda mod, inp, out: seen.append(tuple(out.shape[1:])))
    g(torch.randn(2, Z))
    assert seen == expected
    seen = []
    for m in d.net:
        if isinstance(m, nn.LeakyReLU):
            m.register_forward_hook(lambda mod, inp, out: seen.append(tuple(out.shape[1:])))
    d(torch.randn(2, *shape))
    assert seen == expected[::-1]


def test_cifar10_recipe():
    """width 256, multipliers 4-2-1 at 32 px: z -> 4x4x1024 -> 8x8x512 -> 16x16x256 -> 32x32x3, D mirrored."""
    g = build("generator", (3, 32, 32), 128, width=256, multipliers=[4, 2, 1])
    d = build("discriminator", (3, 32, 32), 128, width=256, multipliers=[4, 2, 1])
    assert [(m.in_channels, m.out_channels, m.kernel_size, m.stride) for m in convs(g)] == [
        (128, 1024, (4, 4), (1, 1)), (1024, 512, (4, 4), (2, 2)), (512, 256, (4, 4), (2, 2)),
        (256, 3, (4, 4), (2, 2))]
    assert [(m.in_channels, m.out_channels, m.kernel_size, m.stride) for m in convs(d)] == [
        (3, 256, (4, 4), (2, 2)), (256, 512, (4, 4), (2, 2)), (512, 1024, (4, 4), (2, 2)),
        (1024, 1, (4, 4), (1, 1))]
    assert sum(p.numel() for p in g.parameters()) == 12_598_787
    assert sum(p.numel() for p in d.parameters()) == 10_517_761


def test_custom_multipliers_set_the_channels():
    g = build("generator", (1, 28, 28), width=3, multipliers=[5, 2])
    d = build("discriminator", (1, 28, 28), width=3, multipliers=[5, 2])
    assert [m.out_channels for m in convs(g)] == [15, 6, 1]
    assert convs(g)[0].kernel_size == (7, 7)  # z -> 7x7
    assert [m.out_channels for m in convs(d)] == [6, 15, 1]
    assert d(torch.randn(3, 1, 28, 28)).shape == (3,)


def test_precision_critical_layers_are_fp32_layers():
    g, d = build("generator"), build("discriminator")
    assert isinstance(convs(g)[-1], FP32ConvTranspose2d)
    assert isinstance(convs(d)[-1], FP32Conv2d)


def largest_singular_value(w, dim=0):
    return torch.linalg.matrix_norm(w.detach().transpose(0, dim).flatten(1), ord=2).item()


@pytest.mark.parametrize("layer", [lambda: nn.Linear(6, 5), lambda: nn.Conv2d(3, 4, 3),
                                   lambda: nn.ConvTranspose2d(4, 3, 4)])
def test_stackable_spectral_norm_equals_torchs_and_batches_under_vmap(layer):
    """gankit's spectral norm is torch's (same init, same power iteration, same vectors and keys), and vmap
    batches it: seed s of a stack of 3 gives seed s's own outputs and power-iteration vectors."""
    from torch.func import functional_call, stack_module_state, vmap

    from gankit.models.spectral import spectral_norm

    nets = []
    for s in range(3):
        torch.manual_seed(s)
        base = layer()
        torch.manual_seed(100 + s)  # the same random u, v at init for both
        ours = spectral_norm(copy.deepcopy(base))
        torch.manual_seed(100 + s)
        theirs = nn.utils.parametrizations.spectral_norm(base)
        nets.append((ours, theirs))
    ours0, theirs0 = nets[0]
    # (not ours0.weight: reading a parametrized weight in training mode runs a power iteration)
    linear = isinstance(ours0, nn.Linear)
    x = torch.randn(3, 2, *((ours0.in_features,) if linear else (ours0.in_channels, 7, 7)))
    assert ours0.state_dict().keys() == theirs0.state_dict().keys()
    for _ in range(4):  # training-mode forwards: one power iteration each
        torch.testing.assert_close(ours0(x[0]), theirs0(x[0]), rtol=1e-6, atol=1e-6)
    for key, value in theirs0.state_dict().items():
        torch.testing.assert_close(ours0.state_dict()[key], value, rtol=1e-6, atol=1e-6, msg=key)
    # stacked: per-seed outputs and per-seed vectors, updated in place through vmap
    wrapped = [nn.Sequential(ours) for ours, _ in nets]  # one class for all (parametrize makes one per layer)
    singles = [copy.deepcopy(w) for w in wrapped]
    params, buffers = stack_module_state(wrapped)
    meta = copy.deepcopy(wrapped[0]).to("meta")
    out = vmap(lambda p, b, xi: functional_call(meta, (p, b), (xi,)))(params, buffers, x)
    for s, single in enumerate(singles):
        torch.testing.assert_close(out[s], single(x[s]), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(buffers["0.parametrizations.weight.0._u"][s],
                                   single[0].parametrizations.weight[0]._u, rtol=1e-5, atol=1e-6)


def test_spectral_norm_on_every_layer_and_sigma_is_one():
    torch.manual_seed(0)
    d = build("discriminator", width=8, spectral_norm=True, batch_norm=False)
    assert len(convs(d)) == 4
    assert all(nn.utils.parametrize.is_parametrized(m, "weight") for m in convs(d))
    assert not any(nn.utils.parametrize.is_parametrized(m) for m in convs(build("discriminator")))
    before = [largest_singular_value(m.weight) for m in convs(d)]
    for _ in range(20):  # one power iteration per training-mode forward refines the estimate of sigma(W)
        d(torch.randn(2, 3, 32, 32))
    after = [largest_singular_value(m.weight) for m in convs(d)]
    assert after == pytest.approx([1.0] * 4, abs=1e-3)
    assert max(abs(s - 1) for s in after) < max(abs(s - 1) for s in before)
    for m in convs(d):  # the weight used is W / sigma(W)
        original = m.parametrizations.weight.original.detach()
        torch.testing.assert_close(m.weight, original / largest_singular_value(original), rtol=2e-3, atol=1e-6)
    d.eval()  # no power iteration in eval mode: the same weights every call
    u = convs(d)[1].parametrizations.weight[0]._u.clone()
    d(torch.randn(2, 3, 32, 32))
    torch.testing.assert_close(convs(d)[1].parametrizations.weight[0]._u, u, rtol=0, atol=0)
    # in G: transposed convolutions are normalised over their output dimension (dim=1)
    g = build("generator", spectral_norm=True)
    assert all(nn.utils.parametrize.is_parametrized(m, "weight") for m in convs(g))
    for _ in range(50):  # the convergence rate is (sigma_2 / sigma_1)^2 per iteration: slow for close sigmas
        g(torch.randn(2, Z))
    assert [largest_singular_value(m.weight, dim=1) for m in convs(g)] == pytest.approx([1.0] * 4, abs=1e-2)


def test_batch_norm_flag():
    g, d = build("generator"), build("discriminator")
    assert len(bns(g)) == 3 and len(bns(d)) == 2  # D: none after its first convolution
    assert isinstance(d.net[1], nn.LeakyReLU)
    assert all(m.bias is None for m in convs(g)[:-1]) and all(m.bias is None for m in convs(d)[1:-1])
    g, d = build("generator", batch_norm=False), build("discriminator", batch_norm=False)
    assert bns(g) == [] and bns(d) == []
    assert all(m.bias is not None for m in convs(g) + convs(d))


def test_activation():
    assert any(isinstance(m, nn.ReLU) for m in build("generator").modules())
    assert any(isinstance(m, nn.LeakyReLU) for m in build("discriminator").modules())
    d = build("discriminator", activation="elu")
    assert any(isinstance(m, nn.ELU) for m in d.modules()) and not any(
        isinstance(m, nn.LeakyReLU) for m in d.modules())


def test_dcgan_init_statistics():
    torch.manual_seed(0)
    d = build("discriminator", width=32)
    for m in convs(d):
        if m.weight.numel() > 1000:
            assert m.weight.mean().item() == pytest.approx(0, abs=2e-3)
            assert m.weight.std().item() == pytest.approx(0.02, rel=0.1)
        if m.bias is not None:
            assert (m.bias == 0).all()
    gamma = torch.cat([m.weight.detach() for m in bns(d) + bns(build("generator", width=32))])
    assert gamma.mean().item() == pytest.approx(1, abs=5e-3) and gamma.std().item() == pytest.approx(0.02, rel=0.15)
    assert all((m.bias == 0).all() for m in bns(d))
    default = build("discriminator", width=32, init="default")
    assert all((m.weight == 1).all() for m in bns(default))
    assert convs(default)[0].weight.std().item() > 0.05  # PyTorch's fan-in init, 3*4*4 inputs


@pytest.mark.parametrize("spec, needle", [
    ({"width": 0}, "model.generator.width"),
    ({"multipliers": [2, 1]}, "model.generator.multipliers must have 3 entries"),
    ({"multipliers": []}, "model.generator.multipliers must have 3 entries"),
    ({"multipliers": [4, 0, 1]}, "model.generator.multipliers[1]"),
    ({"multipliers": 4}, "model.generator.multipliers"),
    ({"batch_norm": "yes"}, "model.generator.batch_norm"),
    ({"init": "xavier"}, "model.generator.init"),
    ({"depth": 3}, "model.generator.depth"),
])
def test_bad_params_are_config_errors_naming_the_key(spec, needle):
    with pytest.raises(ConfigError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        MODELS.build({"name": "dcgan", **spec}, "model.generator", "generator", (3, 32, 32), 128)


@pytest.mark.parametrize("shape", [(3, 48, 48), (3, 32, 28), (2,), (1, 784)])
def test_unsupported_data_shape_is_a_config_error(shape):
    with pytest.raises(ConfigError, match=r"^model.discriminator.name is dcgan, which supports 28x28, 32x32, 64x64"):
        MODELS.build({"name": "dcgan"}, "model.discriminator", "discriminator", shape, 128)


def test_dcgan_d_takes_any_channel_count():
    """A packed D (model.pack: 2 on RGB) sees 6 channels."""
    d = MODELS.build({"name": "dcgan"}, "model.discriminator", "discriminator", (6, 32, 32), 128)
    assert d(torch.randn(2, 6, 32, 32)).shape == (2,)


def test_bf16_autocast_forward_and_backward():
    torch.manual_seed(0)
    g, d = build("generator", (3, 64, 64)), build("discriminator", (3, 64, 64), spectral_norm=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x = g(torch.randn(4, Z))
        out = d(x)
    assert x.dtype == torch.float32 and out.dtype == torch.float32  # fp32 samples and logits
    assert torch.isfinite(out).all() and x.abs().max() <= 1
    out.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in [*g.parameters(), *d.parameters()])


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)], ids=["28", "32"])
def test_channels_last_gives_the_same_outputs(shape):
    torch.manual_seed(0)
    g, d = build("generator", shape), build("discriminator", shape, spectral_norm=True)
    g_cl = copy.deepcopy(g).to(memory_format=torch.channels_last)
    d_cl = copy.deepcopy(d).to(memory_format=torch.channels_last)
    z, x = torch.randn(4, Z), torch.randn(4, *shape)
    torch.testing.assert_close(g_cl(z), g(z), rtol=1e-4, atol=1e-5)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    assert shape[0] == 1 or not x_cl.is_contiguous()
    torch.testing.assert_close(d_cl(x_cl), d(x), rtol=1e-4, atol=1e-5)
    d_cl(g_cl(z)).sum().backward()


def test_backward_reaches_every_parameter_and_double_backward_works():
    torch.manual_seed(0)
    g, d = build("generator", (1, 28, 28)), build("discriminator", (1, 28, 28), batch_norm=False)
    d(g(torch.randn(4, Z))).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in [*g.parameters(), *d.parameters()])
    x = torch.randn(4, 1, 28, 28, requires_grad=True)  # R1 / WGAN-GP: a penalty on the input gradient
    (grad,) = torch.autograd.grad(d(x).sum(), x, create_graph=True)
    d.zero_grad()
    grad.square().sum().backward()
    assert all(m.weight.grad is not None and m.weight.grad.abs().sum() > 0 for m in convs(d))


def test_resolved_spec_states_the_defaults():
    assert MODELS.resolve({"name": "dcgan"}, "model.generator") == {
        "name": "dcgan", "width": 64, "multipliers": None, "batch_norm": True, "spectral_norm": False,
        "activation": "auto", "leaky_slope": 0.2, "init": "dcgan", "condition": "auto", "class_head": False, "q_head": False,
        "q_hidden": 0}


def test_mlp_on_images():
    torch.manual_seed(0)
    shape = (1, 28, 28)
    g = MODELS.build({"name": "mlp", "width": 32, "depth": 2, "output": "tanh"}, "model.generator", "generator",
                     shape, Z)
    d = MODELS.build({"name": "mlp", "width": 32, "depth": 2}, "model.discriminator", "discriminator", shape, Z)
    x = g(torch.randn(6, Z))
    assert x.shape == (6, *shape) and x.abs().max() <= 1
    assert d(x).shape == (6,)
    x_cl = torch.randn(6, 3, 8, 8).contiguous(memory_format=torch.channels_last)  # flatten, not view
    d3 = MODELS.build({"name": "mlp", "width": 8}, "model.discriminator", "discriminator", (3, 8, 8), Z)
    torch.testing.assert_close(d3(x_cl), d3(x_cl.contiguous()))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert g(torch.randn(2, Z)).dtype == torch.float32


def test_mlp_widths_and_batch_norm():
    """widths replaces width x depth layer by layer; batch_norm puts BatchNorm1d after every hidden linear layer
    (whose bias it makes redundant) and normalises each unit over the batch."""
    g = MODELS.build({"name": "mlp", "widths": [16, 32, 64], "batch_norm": True, "output": "tanh"},
                     "model.generator", "generator", (1, 28, 28), Z)
    linears = [m for m in g.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(Z, 16), (16, 32), (32, 64), (64, 784)]
    assert [m.bias is None for m in linears] == [True, True, True, False]
    norms = [m for m in g.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert [m.num_features for m in norms] == [16, 32, 64]
    h = g.norms[0](g.hidden[0](torch.randn(256, Z) * 5 + 3))  # the first Linear, then its BatchNorm1d
    torch.testing.assert_close(h.mean(0), torch.zeros(16), atol=1e-5, rtol=0)
    d = MODELS.build({"name": "mlp", "widths": [8]}, "model.discriminator", "discriminator", (1, 28, 28), Z)
    assert [m.out_features for m in d.modules() if isinstance(m, torch.nn.Linear)] == [8, 1]
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in d.modules())


@pytest.mark.parametrize("spec, needle", [
    ({"widths": []}, "model.generator.widths must list at least one"),
    ({"widths": [64, 0]}, "model.generator.widths[1]"),
    ({"batch_norm": 1}, "model.generator.batch_norm"),
])
def test_bad_mlp_params_are_config_errors_naming_the_key(spec, needle):
    with pytest.raises(ConfigError, match=re.escape(needle)):
        MODELS.build({"name": "mlp", **spec}, "model.generator", "generator", (1, 28, 28), Z)


@pytest.mark.parametrize("name, role, shape", [("dcgan", "discriminator", (1, 28, 28)), ("dcgan", "generator", (1, 28, 28)),
                                               ("mlp", "discriminator", (2,))])
def test_leaky_slope_sets_every_leaky_relu(name, role, shape):
    load_builtins()
    spec = {"name": name, "leaky_slope": 0.01, "activation": "leaky_relu"}
    net = MODELS.build(spec, "m", role, shape, 8)
    leaky = [m for m in net.modules() if isinstance(m, nn.LeakyReLU) and m is not getattr(net, "q_head", None)]
    assert leaky and all(m.negative_slope == 0.01 for m in leaky)
    default = MODELS.build({"name": name, "activation": "leaky_relu"}, "m", role, shape, 8)
    assert all(m.negative_slope == 0.2 for m in default.modules() if isinstance(m, nn.LeakyReLU))
    x = torch.full((1, *shape), -1.0)  # the slope reaches the output: same weights, other slope, other numbers
    default.load_state_dict(net.state_dict())
    net.eval(), default.eval()
    assert not torch.allclose(net(x) if role == "discriminator" else net(torch.full((1, 8), -1.0)),
                              default(x) if role == "discriminator" else default(torch.full((1, 8), -1.0)))


@pytest.mark.parametrize("value", ["-0.1", "1.0", "steep"])
def test_leaky_slope_garbage_is_one_line(value):
    from gankit_testing import assert_user_error, run_cli_here as run_cli  # in this process

    result = run_cli("train", "ring_gan", "train.steps=1", f"model.discriminator.leaky_slope={value}")
    assert_user_error(result, "model.discriminator.leaky_slope")


def test_mlp_reference_layout_and_init():
    """xyfJASON/GANs-Implementations models/simple_mlp.py with with_bn (lsgan_mnist.yaml): D is Linear, LeakyReLU,
    then [Linear, BN, LeakyReLU] twice and the logit (no batch norm after the first layer); init_weights(None) zeroes
    every bias and draws batch-norm scales N(1, 0.02^2)."""
    from torch import nn

    from gankit.models.conditional import as_output
    from gankit.models.mlp import mlp

    torch.manual_seed(0)
    d = mlp("discriminator", (1, 28, 28), 100, width=256, depth=3, activation="leaky_relu", batch_norm=True,
            norm_first=False, init="reference")
    layers = [type(m).__name__ for m in d.modules() if isinstance(m, (nn.Linear, nn.BatchNorm1d))]
    assert layers == ["FP32Linear", "Linear", "Linear", "BatchNorm1d", "BatchNorm1d", "FP32Linear"]
    assert d.hidden[0].bias is not None and d.hidden[1].bias is None  # a bias right before a batch norm cancels
    assert all(float(m.bias.detach().abs().max()) == 0 for m in d.modules() if isinstance(m, nn.Linear) and m.bias is not None)
    scales = torch.cat([m.weight.detach() for m in d.modules() if isinstance(m, nn.BatchNorm1d)])
    assert abs(float(scales.mean()) - 1) < 0.005 and 0.015 < float(scales.std()) < 0.025
    x = torch.randn(8, 1, 28, 28)
    h = torch.nn.functional.leaky_relu(d.hidden[0](x.flatten(1)), 0.2)  # no batch norm after the first layer
    h = torch.nn.functional.leaky_relu(d.norms[1](d.hidden[1](h)), 0.2)
    h = torch.nn.functional.leaky_relu(d.norms[2](d.hidden[2](h)), 0.2)
    torch.testing.assert_close(as_output(d(x)).logit.reshape(-1), d.out(h).reshape(-1))
    g = mlp("generator", (1, 28, 28), 100, width=256, depth=3, batch_norm=True, init="reference")
    assert sum(isinstance(m, nn.BatchNorm1d) for m in g.modules()) == 3  # G: after every hidden layer
    default = mlp("generator", (2,), 32, width=256, depth=3)
    assert float(default.out.bias.detach().abs().max()) > 0  # PyTorch's default init unless init: reference


@pytest.mark.parametrize("kwargs, key", [({"norm_first": False}, "norm_first"),
                                         ({"init": "reference", "init_std": 0.02}, "init")])
def test_mlp_init_options_reject_contradictions(kwargs, key):
    from gankit.errors import ParamError
    from gankit.models.mlp import mlp

    with pytest.raises(ParamError, match=key):
        mlp("discriminator", (2,), 8, **kwargs)
