"""VEEGAN: the losses of Algorithm 1 on hand-made outputs, the codes D sees, the reconstructor's phase and gradient,
learning on the reference ring, bit-exact resume, the shipped configs against the reference code, and the errors."""
import contextlib
import copy
import json
import math

import pytest
import torch
from torch import nn

from gankit import config
from gankit.methods.veegan import Reconstruction, VEEGANLoss
from gankit.models.conditional import DOutput
from gankit.objective import Objective, PairCodes, StepContext
from gankit.prior import Latents
from gankit.train import Trainer
from gankit_testing import FAST, SHARED_DATA, assert_user_error, full_and_resumed, run_cli_here as run_cli  # in this process

# The shipped ring config, small and quick (FAST shrinks G, D(z, x) to 2 x 64 units; F is shrunk here).
SMALL = FAST + ["model.networks.reconstructor.width=64", "model.networks.reconstructor.depth=2",
                "train.precision=fp32", "model.z_dim=8"]




def start(tmp_path, *overrides, name="run", config_name="ring_veegan"):
    return Trainer.start(config.load(config_name, SMALL + list(overrides)), tmp_path / name)


def log_sigmoid(t: float) -> float:
    return -math.log1p(math.exp(-t))


def test_losses_match_algorithm_1_on_hand_made_outputs():
    """Algorithm 1 with the paper's D_p = -(gankit's logit): D maximises log sigma(D_p(z, G(z))) +
    log(1 - sigma(D_p(F(x) + e, x))) (the reference averages the two terms), G minimises D_p(z, G(z))."""
    real, fake = [0.3, -1.2, 2.0], [1.5, -0.4, 0.0]  # gankit's logits: high = the data's pair
    d_p_real, d_p_fake = [-t for t in real], [-t for t in fake]
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    d_expected = -0.5 * (mean([log_sigmoid(t) for t in d_p_fake]) + mean([math.log(1 - 1 / (1 + math.exp(-t)))
                                                                        for t in d_p_real]))
    loss = VEEGANLoss()
    assert float(loss.d_loss(torch.tensor(real), torch.tensor(fake))) == pytest.approx(d_expected, rel=1e-6)
    assert float(loss.g_loss(torch.tensor(fake))) == pytest.approx(mean(d_p_fake), rel=1e-6)


@pytest.mark.parametrize("distance", ["mse", "squared_l2"])
def test_reconstruction_term_and_g_objective_match_their_formula(distance):
    """G's and F's objective: -mean D(z, G(z)) + lambda * rec, rec = mean_ij (z - F(x))^2 (reference) or
    mean_i ||z_i - F(x_i)||^2 (paper), with F a hand-made linear map."""
    f = nn.Linear(2, 3)
    with torch.no_grad():
        f.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, -1.0]]))
        f.bias.copy_(torch.tensor([0.5, 0.0, -1.0]))
    x = torch.tensor([[1.0, 2.0], [-1.0, 0.5]])
    z = torch.tensor([[1.0, 1.0, 1.0], [0.0, -2.0, 3.0]])
    # F(x) = [[1.5, 4, -2], [-0.5, 1, -2.5]]; z - F(x) = [[-0.5, -3, 3], [0.5, -3, 5.5]]
    sq = [[0.25, 9.0, 9.0], [0.25, 9.0, 30.25]]
    rec = sum(map(sum, sq)) / 6 if distance == "mse" else sum(map(sum, sq)) / 2
    term = Reconstruction(weight=0.7, reconstructor="F", noise_std=1.0, distance=distance)
    fake_logit = torch.tensor([0.2, -0.6])
    ctx = StepContext(fake=x, fake_y=None, fake_out=DOutput(fake_logit, {}), z=z, networks={"F": f})
    assert float(term.g_term(ctx).detach()) == pytest.approx(rec)
    total, logged = Objective(VEEGANLoss(), [term], ["veegan"]).g_loss(ctx)
    assert float(total.detach()) == pytest.approx(-(0.2 - 0.6) / 2 + 0.7 * rec)
    assert float(logged["g_veegan"]) == pytest.approx(rec)
    assert term.d_term(ctx) is None and term.d_weight == 0  # D's objective has no reconstruction term


def test_codes_are_z_for_generated_samples_and_noisy_reconstructions_for_real_ones():
    f = nn.Linear(2, 3)
    term = Reconstruction(weight=1.0, reconstructor="F", noise_std=0.5, distance="mse")
    z, real = torch.randn(4, 3), torch.randn(4, 2)
    torch.manual_seed(7)
    codes = term.pair_codes(z, real, {"F": f}, contextlib.nullcontext)
    torch.manual_seed(7)
    expected = f(real) + 0.5 * torch.randn(4, 3)
    assert codes.fake is z
    torch.testing.assert_close(codes.real, expected.detach(), rtol=0, atol=0)
    assert not codes.real.requires_grad  # D's step does not train F
    assert term.pair_codes(z, None, {"F": f}, contextlib.nullcontext) == PairCodes(z, None)  # G's step: z only
    exact = Reconstruction(weight=1.0, reconstructor="F", noise_std=0.0, distance="mse")
    torch.testing.assert_close(exact.pair_codes(z, real, {"F": f}, contextlib.nullcontext).real, f(real).detach())


def _record_d_calls(trainer):
    calls = []
    forward = trainer.exp.d_forward

    def spy(x, y=None, code=None):
        calls.append((x.detach().clone(), None if code is None else code.detach().clone()))
        return forward(x, y, code)

    trainer.exp.d_forward = spy
    return calls


def _fixed_latents(trainer, z):
    trainer.exp.prior.sample = lambda n, device, generator=None: Latents(z[:n], None)


@pytest.mark.parametrize("batch_norm", [True, False])
def test_d_sees_z_x_pairs(tmp_path, batch_norm):
    """D's step scores (F(x) + e, x) and (z, G(z)); G's step scores (z, G(z)). A D without batch norm scores the
    two batches in one forward, with their codes joined in the same order."""
    trainer = start(tmp_path, f"model.discriminator.batch_norm={str(batch_norm).lower()}")
    exp = trainer.exp
    b, z_dim = trainer.batch_size, exp.prior.z_dim
    z = torch.randn(b, z_dim)
    _fixed_latents(trainer, z)
    calls = _record_d_calls(trainer)
    trainer.d_step(0)
    if batch_norm:  # two forwards: the real batch, then the generated one
        assert [(tuple(x.shape), tuple(c.shape)) for x, c in calls] == [((b, 2), (b, z_dim))] * 2
        real_code, fake_code = calls[0][1], calls[1][1]
    else:
        assert [(tuple(x.shape), tuple(c.shape)) for x, c in calls] == [((2 * b, 2), (2 * b, z_dim))]
        real_code, fake_code = calls[0][1][:b], calls[0][1][b:]
    torch.testing.assert_close(fake_code, z, rtol=0, atol=0)
    assert not torch.allclose(real_code, z)
    calls.clear()
    trainer.g_step()
    assert len(calls) == 1 and calls[0][0].shape == (b, 2)
    torch.testing.assert_close(calls[0][1], z, rtol=0, atol=0)


def _params(net):
    return {k: v.detach().clone() for k, v in net.named_parameters()}


def test_reconstructor_trains_with_g_on_the_reconstruction_gradient(tmp_path):
    trainer = start(tmp_path, "terms.0.weight=0.5")
    exp = trainer.exp
    assert exp.players["reconstructor"] == "generator"
    assert exp.trained_with("generator") == ["generator", "reconstructor"]
    f, g = exp.networks["reconstructor"], exp.generator
    z = torch.randn(trainer.g_batch_size, exp.prior.z_dim)
    _fixed_latents(trainer, z)
    before = _params(f)
    trainer.d_step(0)  # D's step: F runs (for the real codes) but does not move
    assert all(torch.equal(before[k], v) for k, v in _params(f).items())
    # The gradient F receives in G's step is that of lambda * mse(F(G(z)), z), computed on copies of G and F.
    g_copy, f_copy = copy.deepcopy(g), copy.deepcopy(f)
    (0.5 * (f_copy(g_copy(z)) - z).square().mean()).backward()
    trainer.g_step()
    for (name, p), (_, q) in zip(f.named_parameters(), f_copy.named_parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-7, msg=name)
    assert any(not torch.equal(before[k], v) for k, v in _params(f).items())  # and F stepped


def test_without_the_reconstruction_term_f_gets_no_gradient(tmp_path):
    trainer = start(tmp_path, "terms.0.weight=0")
    f = trainer.exp.networks["reconstructor"]
    before = _params(f)
    trainer.d_step(0)
    trainer.g_step()
    assert all(p.grad is None for p in f.parameters())
    assert all(torch.equal(before[k], v) for k, v in _params(f).items())


def test_interrupted_and_resumed_veegan_run_equals_uninterrupted_run(tmp_path):
    steps = ["train.steps=20", "train.checkpoint_every=10", "train.n_critic=2"]
    # killed right after its first checkpoint, then resumed
    full, resumed, resumed_at = full_and_resumed(lambda name: start(tmp_path, *steps, name=name))
    assert resumed_at == 10
    states = [{f"{who}.{k}": v for who, net in t.exp.networks.items() for k, v in net.state_dict().items()}
              for t in (full, resumed)]
    assert {k.split(".")[0] for k in states[0]} == {"generator", "discriminator", "reconstructor"}
    for key in states[0]:
        torch.testing.assert_close(states[0][key], states[1][key], rtol=0, atol=0, msg=key)
    opt = [t.exp.optimizers["reconstructor"].state_dict()["state"] for t in (full, resumed)]
    for k in opt[0]:
        torch.testing.assert_close(opt[0][k]["exp_avg"], opt[1][k]["exp_avg"], rtol=0, atol=0)
    logged = [json.loads(line) for line in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    assert any("g_veegan" in r for r in logged)


def test_ring_veegan_learns_the_ring(tmp_path):
    """Real learning: the shipped ring_veegan recipe (full-size networks), 400 of its 5,000 G steps. At 400 steps
    VEEGAN's samples (and the reference code's, README figure) are still spread over the ring's region, and VEEGAN
    at these settings is unstable on some seeds (docs/veegan.md), so the test asks G to have left the untrained
    blob at the origin (0 modes, 0 high-quality samples on seeds 0-2) for several modes. Measured, seed 0: on an
    AMD EPYC 6 modes, high-quality fraction 0.082, reverse KL 0.105; on an Intel Xeon with 2 threads 3 modes,
    0.086, 0.52, and with 1 thread 6 modes, 0.061, 0.17. Float reduction order alone moves one seed that much,
    so a tighter bound on one seed would test the machine, not gankit."""
    cfg = config.load("ring_veegan", ["train.steps=400", "train.progress=false", "train.tensorboard=false",
                                      "train.log_every=100", "train.snapshot_steps=[]", "eval.n_samples=1000",
                                      "train.seed=0", "train.precision=fp32"])
    results = Trainer.start(cfg, tmp_path / "run").fit()
    assert results["modes"] >= 3 and results["high_quality"] >= 0.03, results


def test_shipped_configs_follow_the_reference_code():
    """xyfJASON/GANs-Implementations configs/veegan_ring8.yaml, veegan_mnist.yaml, scripts/train_veegan.py."""
    for name, z_dim, steps in [("ring_veegan", 32, 5000), ("grid_veegan", 32, 5000), ("mnist_veegan", 100, 10000)]:
        cfg = config.load(name)
        assert (cfg.model.z_dim, cfg.train.steps, cfg.train.batch_size, cfg.train.n_critic, cfg.train.seed) == (
            z_dim, steps, 256, 5, 5678)
        assert cfg.loss["name"] == "veegan" and cfg.regularizers == []
        assert cfg.terms == [{"name": "veegan", "weight": 1.0, "reconstructor": "reconstructor", "noise_std": 1.0,
                              "distance": "mse"}]
        for spec in (cfg.optim.generator, cfg.optim.discriminator, cfg.optim.networks["reconstructor"]):
            assert (spec["name"], spec["lr"], list(spec["betas"])) == ("adam", 3e-4, [0.5, 0.999])
    ring, grid = config.load("ring_veegan").data, config.load("grid_veegan").data
    assert (ring["radius"], ring["std"], ring["n"]) == pytest.approx((10 / 15, 0.5 / 15, 3200), rel=1e-6)
    assert (grid["spacing"], grid["std"], grid["n"]) == pytest.approx((5 / 15, 0.5 / 15, 10000), rel=1e-6)
    assert ring["balanced"] and grid["balanced"]  # 400 points per mode, as Ring8 and Grid25
    assert config.load("ring_veegan").train.snapshot_steps == [200, 400, 600, 800]


def test_shipped_networks_have_the_reference_layers(tmp_path):
    """simple_mlp_veegan.py with dim 256, dim_mults [1, 1, 1], with_bn: G: Linear-BN-LReLU x 3, tanh; D(z, x) and
    F: Linear-LReLU, (Linear-BN-LReLU) x 2, then the output layer; D's input is [x, z]."""
    exp = start(tmp_path, *[f"{who}.{k}={v}" for who in ("model.generator", "model.discriminator",
                                                         "model.networks.reconstructor")
                            for k, v in (("width", 256), ("depth", 3))], "model.z_dim=32").exp

    def layers(net):
        kinds = (nn.Linear, nn.BatchNorm1d, nn.LeakyReLU)
        return [next(k.__name__ for k in kinds if isinstance(m, k)) for m in net.modules() if isinstance(m, kinds)]

    d, f = exp.discriminator, exp.networks["reconstructor"]
    block = ["Linear", "BatchNorm1d", "LeakyReLU"]
    g = exp.generator  # gankit's mlp: hidden linear layers, their norms and activations in three lists
    assert [m.out_features for m in g.hidden] == [256] * 3 and len(g.norms) == 3 and g.output == "tanh"
    assert all(isinstance(a, nn.LeakyReLU) and a.negative_slope == 0.2 for a in g.acts)
    assert layers(d) == layers(f) == ["Linear", "LeakyReLU"] + block * 2 + ["Linear"]
    assert d.net.hidden[0].in_features == 2 + 32 and d.net.out.out_features == 1
    assert f.net.hidden[0].in_features == 2 and f.net.out.out_features == 32
    x, z = torch.randn(5, 2), torch.randn(5, 32)
    assert d(x, None, z).shape == (5,) and f(x).shape == (5, 32)


def test_grid_veegan_config_builds(tmp_path):
    exp = start(tmp_path, config_name="grid_veegan").exp
    assert exp.data.info["means"].shape == (25, 2)


@pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason="../shared/data/mnist is absent")
def test_mnist_veegan_runs(tmp_path, monkeypatch):
    import shutil

    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in (SHARED_DATA / "mnist").glob("*.gz"):
        shutil.copy(f, raw / f.name)
    monkeypatch.setenv("GANKIT_DATA", str(tmp_path / "data"))
    cfg = config.load("mnist_veegan", ["train.progress=false", "train.tensorboard=false", "train.steps=3",
                                       "train.sample_every=0", "eval.n_samples=100", "data.limit=2000",
                                       "train.precision=fp32"])
    trainer = Trainer.start(cfg, tmp_path / "run")
    assert trainer.exp.discriminator.net.hidden[0].in_features == 784 + 100
    trainer.fit()
    assert (tmp_path / "run" / "samples" / "progress.gif").exists()


def test_veegan_errors_are_one_line(tmp_path):
    out = lambda name: ["--out", str(tmp_path / name)]  # noqa: E731
    base = ["train", "ring_veegan", *FAST]
    assert_user_error(run_cli(*base, *out("a"), "model.discriminator={name: mlp}"), "terms.0 (veegan)", "joint_mlp")
    assert_user_error(run_cli(*base, *out("b"), "model.networks={}"), "needs model.networks.reconstructor")
    assert_user_error(run_cli(*base, *out("c"), "model.networks.reconstructor={name: mlp}"),
                      "model.networks.reconstructor", "encoder_mlp")
    assert_user_error(run_cli(*base, *out("d"), "model.discriminator.code_dim=16"),
                      "model.discriminator.code_dim is 16", "model.z_dim (32)")
    assert_user_error(run_cli(*base, *out("e"), "model.networks.reconstructor.code_dim=4"),
                      "model.networks.reconstructor.code_dim is 4")
    assert_user_error(run_cli(*base, *out("f"), "terms=[]", "model.networks={}", "optim.networks={}"), "model.discriminator (joint_mlp)",
                      "needs a term")
    assert_user_error(run_cli(*base, *out("g"), "regularizers=[{name: r1, weight: 1}]"), "regularizers.0 (r1)")
    assert_user_error(run_cli(*base, *out("h"), "model.pack=2"), "model.pack")
    assert_user_error(run_cli(*base, *out("i"), "model.generator={name: joint_mlp}"), "model.generator.name")
    assert_user_error(run_cli(*base, *out("j"), "model.conditional=true"), "model.discriminator.name",
                      "no class conditioning")
    assert not any((tmp_path / n).exists() for n in "abcdefghij")  # refused before anything is written


def test_other_regularizers_still_work_with_codes(tmp_path):
    """Penalties on D's logits (rlc), clipping and instance noise need no input gradient: they combine."""
    trainer = start(tmp_path, "regularizers=[{name: rlc, weight: 0.1}]", "augment=[{name: noise, sigma: 0.05}]",
                    "train.steps=3")
    trainer.fit()
