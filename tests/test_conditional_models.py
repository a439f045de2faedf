"""Class-conditional dcgan and the SNGAN ResNets (sngan_resnet): conditional batch norm, projection, concatenation,
class heads, spectral norm, shapes, parameter counts, errors and precision."""
import copy
import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from gankit.errors import ConfigError
from gankit.models.conditional import ConditionalBatchNorm, DOutput
from gankit.models.dcgan import _run
from gankit.models.layers import FP32Conv2d, FP32Linear
from gankit.registry import MODELS, load_builtins

load_builtins()
Z, K, B = 8, 5, 6
SHAPE = (3, 32, 32)


def build(name, role, shape=SHAPE, z_dim=Z, n_classes=K, **params):
    params.setdefault("width", 4 if name == "dcgan" else 8)
    return MODELS.build({"name": name, **params}, f"model.{role}", role, shape, z_dim, n_classes)


def labels(n=B, seed=0):
    return torch.randint(K, (n,), generator=torch.Generator().manual_seed(seed))


def perturb_cbn(model, seed=1):
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, ConditionalBatchNorm):
            with torch.no_grad():
                m.scale.weight.add_(0.5 * torch.randn(m.scale.weight.shape, generator=gen))
                m.shift.weight.add_(0.5 * torch.randn(m.shift.weight.shape, generator=gen))


def unconditional_twin(cond, name, **params):
    """The same generator without labels, with cond's weights and batch norms whose affine part is (1, 0)."""
    plain = build(name, "generator", n_classes=0, **params)
    source = cond.state_dict()
    state = {}
    for key, value in plain.state_dict().items():
        prefix, leaf = key.rsplit(".", 1)
        if key in source:
            state[key] = source[key]
        elif f"{prefix}.norm.{leaf}" in source:  # running statistics of a conditional batch norm
            state[key] = source[f"{prefix}.norm.{leaf}"]
        else:  # the plain batch norm's own scale and shift
            assert leaf in ("weight", "bias"), key
            state[key] = torch.ones_like(value) if leaf == "weight" else torch.zeros_like(value)
    plain.load_state_dict(state)
    return plain


# --- conditional batch norm ----------------------------------------------------------------------------------

def test_conditional_batch_norm_is_batch_norm_at_init_then_depends_on_the_class():
    torch.manual_seed(0)
    cbn, bn = ConditionalBatchNorm(7, K), nn.BatchNorm2d(7)
    x, y = torch.randn(B, 7, 5, 5) * 3 + 1, labels()
    torch.testing.assert_close(cbn(x, y), bn(x))  # train mode: batch statistics
    torch.testing.assert_close(cbn.norm.running_mean, bn.running_mean)
    torch.testing.assert_close(cbn.norm.running_var, bn.running_var)
    cbn.eval(), bn.eval()
    torch.testing.assert_close(cbn(x, y), bn(x))  # eval mode: running statistics
    perturb_cbn(cbn)
    same = torch.zeros(B, dtype=torch.long)
    assert not torch.allclose(cbn(x, same), cbn(x, same + 1))


@pytest.mark.parametrize("name, n_norms", [("dcgan", 3), ("sngan_resnet", 6)])
def test_cbn_generator_equals_batch_norm_generator_at_init_and_depends_on_the_class_after(name, n_norms):
    torch.manual_seed(0)
    g = build(name, "generator", condition="cbn")
    assert g.uses_labels
    assert sum(isinstance(m, ConditionalBatchNorm) for m in g.modules()) == n_norms
    plain = unconditional_twin(g, name)
    z, y = torch.randn(B, Z), labels()
    torch.testing.assert_close(g(z, y), plain(z), rtol=1e-5, atol=1e-6)  # train mode
    g.eval(), plain.eval()
    torch.testing.assert_close(g(z, y), plain(z), rtol=1e-5, atol=1e-6)  # eval mode, running statistics
    torch.testing.assert_close(g(z, (y + 1) % K), g(z, y))  # no class effect yet
    perturb_cbn(g)
    x0, x1 = g(z, torch.zeros(B, dtype=torch.long)), g(z, torch.ones(B, dtype=torch.long))
    assert (x0 - x1).abs().mean() > 1e-3  # same z, different classes


def test_dcgan_cbn_replaces_every_batch_norm_and_needs_batch_norm():
    g = build("dcgan", "generator", condition="cbn")
    assert not any(type(m) is nn.BatchNorm2d for m in g.net)
    assert g.net[0].in_channels == Z  # z alone is the input
    with pytest.raises(ConfigError, match="model.generator.condition is cbn .* needs batch_norm: true"):
        build("dcgan", "generator", condition="cbn", batch_norm=False)


def test_resnet_cbn_is_in_the_blocks_and_the_final_batch_norm_is_plain():
    g = build("sngan_resnet", "generator", condition="cbn")
    for block in g.blocks:
        assert isinstance(block.norm1, ConditionalBatchNorm) and isinstance(block.norm2, ConditionalBatchNorm)
    assert type(g.norm) is nn.BatchNorm2d


# --- projection ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spectral_norm", [False, True])
def test_dcgan_projection_adds_embed_y_dot_sum_pooled_last_hidden_map(spectral_norm):
    torch.manual_seed(0)
    d = build("dcgan", "discriminator", condition="projection", spectral_norm=spectral_norm).eval()
    assert d.uses_labels
    seen = {}
    d.net[-1].register_forward_hook(lambda m, inp, out: seen.update(h=inp[0], psi=out.flatten()))
    x, y = torch.randn(B, *SHAPE), labels()
    logit = d(x, y)
    h = seen["h"]
    assert h.shape == (B, 16, 4, 4)  # the last hidden map: width * 4 channels at 4x4
    phi = h.sum(dim=(2, 3))  # global sum pooling
    term = (d.projection.embed.weight[y] * phi).sum(1)
    torch.testing.assert_close(logit - seen["psi"], term, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(d(x, (y + 1) % K), logit)


@pytest.mark.parametrize("spectral_norm", [False, True])
def test_resnet_projection_adds_embed_y_dot_phi(spectral_norm):
    torch.manual_seed(0)
    d = build("sngan_resnet", "discriminator", spectral_norm=spectral_norm).eval()  # auto = projection
    assert d.condition == "projection" and d.uses_labels
    x, y = torch.randn(B, *SHAPE), labels()
    phi = d.features(x)
    torch.testing.assert_close(phi, F.relu(d.blocks(x)).sum(dim=(2, 3)))  # ReLU, then global sum pooling
    unconditional = d.out(phi).squeeze(1)
    term = (d.projection.embed.weight[y] * phi).sum(1)
    torch.testing.assert_close(d(x, y) - unconditional, term, rtol=1e-5, atol=1e-4)


# --- concatenation -------------------------------------------------------------------------------------------

def test_dcgan_concat_input_channels_and_inputs():
    torch.manual_seed(0)
    g, d = build("dcgan", "generator"), build("dcgan", "discriminator")  # auto = concat when conditional
    assert g.condition == d.condition == "concat" and g.uses_labels and d.uses_labels
    assert g.net[0].in_channels == Z + K
    assert d.net[0].in_channels == SHAPE[0] + K
    z, y = torch.randn(B, Z), labels()
    code = F.one_hot(y, K).float()
    x = g(z, y)
    torch.testing.assert_close(x, _run(g.net, torch.cat([z, code], 1).view(B, -1, 1, 1), y))
    planes = code.view(B, K, 1, 1).expand(B, K, 32, 32)
    d.eval()
    torch.testing.assert_close(d(x, y), _run(d.net, torch.cat([x, planes], 1), y).flatten())
    assert not torch.allclose(g(z, (y + 1) % K), x)


def test_resnet_concat_generator_input():
    torch.manual_seed(0)
    g = build("sngan_resnet", "generator", condition="concat")
    assert g.linear.in_features == Z + K
    assert not any(isinstance(m, ConditionalBatchNorm) for m in g.modules())
    z, y = torch.randn(B, Z), labels()
    assert not torch.allclose(g(z, y), g(z, (y + 1) % K))


# --- class head ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["dcgan", "sngan_resnet"])
def test_class_head_returns_a_doutput_and_is_spectrally_normalised(name):
    torch.manual_seed(0)
    d = build(name, "discriminator", class_head=True, spectral_norm=True)
    assert d.condition == "none" and not d.uses_labels  # auto with a class head: ACGAN, no labels in D
    out = d(torch.randn(B, *SHAPE))
    assert isinstance(out, DOutput)
    assert out.logit.shape == (B,) and out.heads["class"].shape == (B, K)
    assert out.logit.dtype == out.heads["class"].dtype == torch.float32
    assert parametrize.is_parametrized(d.class_head, "weight")
    assert not parametrize.is_parametrized(build(name, "discriminator", class_head=True,
                                                 spectral_norm=False).class_head)


def test_dcgan_class_head_is_an_s0_conv_on_the_last_hidden_map():
    torch.manual_seed(0)
    d = build("dcgan", "discriminator", class_head=True).eval()
    assert isinstance(d.class_head, FP32Conv2d) and d.class_head.kernel_size == (4, 4)
    seen = {}
    d.net[-1].register_forward_hook(lambda m, inp, out: seen.update(h=inp[0]))
    out = d(torch.randn(B, *SHAPE))
    expected = F.linear(seen["h"].flatten(1), d.class_head.weight.flatten(1), d.class_head.bias)
    torch.testing.assert_close(out.heads["class"], expected)


def test_class_head_and_projection_together():
    d = build("sngan_resnet", "discriminator", class_head=True, condition="projection")
    out = d(torch.randn(2, *SHAPE), labels(2))
    assert isinstance(out, DOutput) and isinstance(d.class_head, FP32Linear) and d.uses_labels


@pytest.mark.parametrize("name", ["dcgan", "sngan_resnet"])
def test_spectral_norm_on_the_projection_embedding(name):
    torch.manual_seed(0)
    d = build(name, "discriminator", condition="projection", spectral_norm=True)
    embed = d.projection.embed
    assert parametrize.is_parametrized(embed, "weight")
    x, y = torch.randn(4, *SHAPE), labels(4)
    for _ in range(30):
        d(x, y)
    d.eval()
    assert torch.linalg.matrix_norm(embed.weight.detach(), ord=2).item() == pytest.approx(1.0, abs=1e-2)
    g = build(name, "generator", condition="cbn", spectral_norm=True)  # never on cBN's embeddings
    assert not any(parametrize.is_parametrized(m) for m in g.modules() if isinstance(m, nn.Embedding))


# --- condition resolution and errors -------------------------------------------------------------------------

@pytest.mark.parametrize("name, role, class_head, n_classes, expected", [
    ("dcgan", "generator", False, K, "concat"),
    ("dcgan", "discriminator", False, K, "concat"),
    ("dcgan", "discriminator", True, K, "none"),
    ("dcgan", "generator", False, 0, "none"),
    ("sngan_resnet", "generator", False, K, "cbn"),
    ("sngan_resnet", "discriminator", False, K, "projection"),
    ("sngan_resnet", "discriminator", True, K, "none"),
    ("sngan_resnet", "discriminator", False, 0, "none"),
])
def test_auto_condition(name, role, class_head, n_classes, expected):
    params = {"class_head": True} if class_head else {}
    model = build(name, role, n_classes=n_classes, **params)
    assert model.condition == expected and model.uses_labels == (expected != "none")


@pytest.mark.parametrize("name, role, spec, needle", [
    ("dcgan", "generator", {"condition": "cbn"}, "model.generator.condition is cbn, which needs class labels"),
    ("dcgan", "discriminator", {"condition": "projection"}, "model.discriminator.condition is projection, which"),
    ("dcgan", "discriminator", {"class_head": True}, "model.discriminator.class_head is true, which needs class"),
    ("sngan_resnet", "generator", {"condition": "concat"}, "model.generator.condition is concat, which needs"),
    ("sngan_resnet", "discriminator", {"condition": "projection"}, "model.discriminator.condition is projection"),
    ("sngan_resnet", "discriminator", {"class_head": True}, "model.discriminator.class_head is true, which"),
])
def test_conditioning_requires_labels(name, role, spec, needle):
    with pytest.raises(ConfigError, match=re.escape(needle)):
        build(name, role, n_classes=0, **spec)


@pytest.mark.parametrize("name, role, spec, needle", [
    ("dcgan", "generator", {"condition": "projection"}, "model.generator.condition 'projection' is not a"),
    ("dcgan", "discriminator", {"condition": "cbn"}, "model.discriminator.condition 'cbn' is not a"),
    ("dcgan", "generator", {"class_head": True}, "model.generator.class_head is a discriminator option"),
    ("sngan_resnet", "discriminator", {"condition": "concat"}, "model.discriminator.condition 'concat' is not"),
    ("sngan_resnet", "generator", {"condition": "projection"}, "model.generator.condition 'projection' is not"),
    ("sngan_resnet", "generator", {"class_head": True}, "model.generator.class_head is a discriminator option"),
    ("sngan_resnet", "generator", {"width": 0}, "model.generator.width"),
])
def test_bad_conditioning_is_a_config_error(name, role, spec, needle):
    with pytest.raises(ConfigError, match=re.escape(needle)):
        build(name, role, **spec)


@pytest.mark.parametrize("name", ["dcgan", "sngan_resnet"])
def test_conditional_models_refuse_a_call_without_labels(name):
    g, d = build(name, "generator"), build(name, "discriminator")
    with pytest.raises(ValueError, match="call it with class labels"):
        g(torch.randn(2, Z))
    with pytest.raises(ValueError, match="call it with class labels"):
        d(torch.randn(2, *SHAPE))


def test_unconditional_dcgan_keeps_its_state_dict_names():
    """net.<i> as the former nn.Sequential, so checkpoints of unconditional runs still load."""
    for role in ("generator", "discriminator"):
        model = build("dcgan", role, n_classes=0)
        assert not model.uses_labels
        assert list(model.state_dict()) == [f"net.{k}" for k in nn.Sequential(*model.net).state_dict()]


# --- SNGAN ResNet --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 32, 32), (3, 48, 48), (3, 64, 64)], ids=str)
def test_resnet_shapes_and_range(shape):
    torch.manual_seed(0)
    g, d = build("sngan_resnet", "generator", shape, n_classes=0), build("sngan_resnet", "discriminator", shape,
                                                                         n_classes=0)
    x = g(torch.randn(4, Z))
    assert x.shape == (4, *shape) and x.dtype == torch.float32 and x.abs().max() <= 1
    out = d(x)
    assert out.shape == (4,) and out.dtype == torch.float32


def test_resnet_feature_map_sizes():
    w = 8
    g, d = build("sngan_resnet", "generator", width=w), build("sngan_resnet", "discriminator", width=w)
    seen = []
    hook = lambda m, inp, out: seen.append(tuple(out.shape[1:]))  # noqa: E731
    for block in d.blocks:
        block.register_forward_hook(hook)
    d(torch.randn(2, *SHAPE), labels(2))
    assert seen == [(w, 16, 16), (w, 8, 8), (w, 8, 8), (w, 8, 8)]  # 32 -> 16 -> 8 -> 8 -> 8
    seen.clear()
    g.linear.register_forward_hook(hook)
    for block in g.blocks:
        block.register_forward_hook(hook)
    g(torch.randn(2, Z), labels(2))
    assert seen == [(4 * 4 * w,), (w, 8, 8), (w, 16, 16), (w, 32, 32)]
    assert d.blocks[0].shortcut is not None and d.blocks[1].shortcut is not None  # downsampling: learned
    assert d.blocks[2].shortcut is None and d.blocks[3].shortcut is None  # identity


def reference_d(d, x):
    """The SNGAN CIFAR-10 discriminator written out (Miyato et al. 2018, Table 4 / the authors' code)."""
    b = d.blocks
    pool = lambda t: F.avg_pool2d(t, 2)  # noqa: E731
    h = pool(b[0].conv2(F.relu(b[0].conv1(x)))) + b[0].shortcut(pool(x))  # optimised block: pool, then 1x1
    h = pool(b[1].conv2(F.relu(b[1].conv1(F.relu(h))))) + pool(b[1].shortcut(h))  # 1x1, then pool
    for blk in b[2:]:
        h = blk.conv2(F.relu(blk.conv1(F.relu(h)))) + h
    return d.out(F.relu(h).sum(dim=(2, 3))).squeeze(1)


def reference_g(g, z):
    up = lambda t: F.interpolate(t, scale_factor=2, mode="nearest")  # noqa: E731
    h = g.linear(z).view(z.shape[0], -1, 4, 4)
    for b in g.blocks:
        h = b.conv2(F.relu(b.norm2(b.conv1(up(F.relu(b.norm1(h))))))) + b.shortcut(up(h))
    return torch.tanh(g.out(F.relu(g.norm(h))))


def test_resnet_matches_the_written_out_architecture():
    torch.manual_seed(0)
    g = build("sngan_resnet", "generator", n_classes=0).eval()
    d = build("sngan_resnet", "discriminator", n_classes=0).eval()
    z = torch.randn(B, Z)
    torch.testing.assert_close(g(z), reference_g(g, z))
    x = torch.randn(B, *SHAPE)
    torch.testing.assert_close(d(x), reference_d(d, x))


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def test_resnet_paper_sizes_and_parameter_counts():
    """The paper's CIFAR-10 models: G width 256 and z 128 (4.28M parameters), D width 128 (1.05M)."""
    torch.manual_seed(0)
    g = MODELS.build({"name": "sngan_resnet"}, "model.generator", "generator", SHAPE, 128)
    d = MODELS.build({"name": "sngan_resnet"}, "model.discriminator", "discriminator", SHAPE, 128)
    assert g.width == 256 and d.blocks[0].conv1.out_channels == 128
    # G: linear 128 -> 4*4*256, 3 x (2 BN + 2 conv3x3 + conv1x1), BN, conv3x3 -> 3
    per_block = 2 * (256 * 256 * 9 + 256) + (256 * 256 + 256) + 2 * 2 * 256
    assert n_params(g) == (128 * 4096 + 4096) + 3 * per_block + 2 * 256 + (256 * 3 * 9 + 3) == 4_276_739
    # D: optimised block, downsampling block (1x1 shortcut), 2 plain blocks, linear 128 -> 1 without bias
    conv3 = 128 * 128 * 9 + 128
    assert n_params(d) == (3 * 128 * 9 + 128 + conv3 + 3 * 128 + 128) + (2 * conv3 + 128 * 128 + 128) + \
        4 * conv3 + 128 == 1_053_824
    assert n_params(g) == pytest.approx(4.3e6, rel=0.02) and n_params(d) == pytest.approx(1.05e6, rel=0.01)
    # spectral norm by default in D only
    layers = (nn.Conv2d, nn.Linear)
    assert all(parametrize.is_parametrized(m, "weight") for m in d.modules() if isinstance(m, layers))
    assert not any(parametrize.is_parametrized(m) for m in g.modules())
    assert MODELS.resolve({"name": "sngan_resnet"}, "model.generator") == {
        "name": "sngan_resnet", "width": None, "spectral_norm": None, "condition": "auto", "class_head": False}


def test_resnet_xavier_init():
    torch.manual_seed(0)
    g = build("sngan_resnet", "generator", width=32, n_classes=0)

    def limit(m, gain):
        fan_in = m.weight[0].numel()
        fan_out = m.weight.shape[0] * m.weight[0, 0].numel()
        return gain * math.sqrt(6 / (fan_in + fan_out))

    def check(m, gain):
        bound = limit(m, gain)
        assert bound * 0.9 < m.weight.abs().max().item() <= bound
        assert m.bias is None or (m.bias == 0).all()

    for b in g.blocks:
        check(b.conv1, math.sqrt(2)), check(b.conv2, math.sqrt(2)), check(b.shortcut, 1.0)
    check(g.linear, 1.0), check(g.out, 1.0)


@pytest.mark.parametrize("shape", [(3, 28, 28), (3, 16, 16), (2, 32, 32), (3, 32, 28), (1, 784)], ids=str)
def test_resnet_unsupported_data_shape_is_a_config_error(shape):
    with pytest.raises(ConfigError, match=r"^model.discriminator.name is sngan_resnet, which supports 32x32, "
                                          r"48x48, 64x64"):
        MODELS.build({"name": "sngan_resnet"}, "model.discriminator", "discriminator", shape, 128)


# --- precision and memory format -----------------------------------------------------------------------------

@pytest.mark.parametrize("name, g_spec, d_spec", [
    ("dcgan", {"condition": "cbn"}, {"condition": "projection", "spectral_norm": True, "class_head": True}),
    ("dcgan", {"condition": "concat"}, {"condition": "concat", "batch_norm": False}),
    ("sngan_resnet", {"condition": "cbn"}, {"condition": "projection", "class_head": True}),
    ("sngan_resnet", {"condition": "concat"}, {}),
])
def test_bf16_autocast_outputs_are_fp32(name, g_spec, d_spec):
    torch.manual_seed(0)
    g, d = build(name, "generator", **g_spec), build(name, "discriminator", **d_spec)
    y = labels()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x = g(torch.randn(B, Z), y)
        out = d(x, y)
    logit = out.logit if isinstance(out, DOutput) else out
    assert x.dtype == torch.float32 and logit.dtype == torch.float32
    loss = logit.mean()
    if isinstance(out, DOutput):
        assert out.heads["class"].dtype == torch.float32
        loss = loss + out.heads["class"].logsumexp(1).mean()
    assert torch.isfinite(logit).all() and x.abs().max() <= 1
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in d.parameters())


@pytest.mark.parametrize("name, spec", [
    ("dcgan", {"condition": "concat", "spectral_norm": True}),
    ("dcgan", {"condition": "projection", "class_head": True}),
    ("sngan_resnet", {"class_head": True}),
])
def test_channels_last_gives_the_same_outputs(name, spec):
    torch.manual_seed(0)
    g = build(name, "generator")
    d = build(name, "discriminator", **spec)
    g_cl = copy.deepcopy(g).to(memory_format=torch.channels_last)
    d_cl = copy.deepcopy(d).to(memory_format=torch.channels_last)
    z, y = torch.randn(4, Z), labels(4)
    torch.testing.assert_close(g_cl(z, y), g(z, y), rtol=1e-4, atol=1e-5)
    x = torch.randn(4, *SHAPE)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    ref, got = d(x, y), d_cl(x_cl, y)
    if isinstance(ref, DOutput):
        torch.testing.assert_close(got.heads["class"], ref.heads["class"], rtol=1e-4, atol=1e-4)
        ref, got = ref.logit, got.logit
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)
