"""InfoGAN: codes in the prior, the Q head, the mutual-information term, the Hungarian-matched metric, sampling by
code and traversals, the errors, resume, and a short MNIST run (when the data is present)."""
import itertools
import json
import math

import numpy as np
import pytest
import torch

from gankit import config
from gankit.experiment import Experiment
from gankit.losses import NonSaturatingLoss
from gankit.methods.infogan import MutualInformation
from gankit.traversal import traversal_latents
from gankit.metrics.infogan import best_matching, matched_accuracy
from gankit.models.conditional import DOutput
from gankit.objective import Objective, StepContext
from gankit.prior import CodeSpec, Prior
from gankit.train import Trainer
from gankit_testing import FAST, SHARED_DATA, assert_user_error, full_and_resumed, run_cli_here as run_cli  # in this process


# A small InfoGAN on the ring (labels unused): a 4-way categorical code and one continuous code, an MLP D with a
# Q head, the term on every second D step.
TOY_INFOGAN = ["model.codes={categorical: [4], continuous: 1}", "model.discriminator.q_head=true",
               "terms=[{name: infogan, d_every: 2}]", "train.n_critic=2"]
# A tiny InfoGAN on random 28x28 images: for the sampling paths, not for learning.
IMAGE_INFOGAN = ["data={name: noise_images, n: 64, channels: 1, resolution: 28}", "model.z_dim=8",
                 "model.codes={categorical: [3], continuous: 2}", "model.generator={name: dcgan, width: 4}",
                 "model.discriminator={name: dcgan, width: 4, q_head: true}", "terms=[{name: infogan}]",
                 "regularizers=[]", "schedules=[]", "train.batch_size=8", "train.progress=false",
                 "train.tensorboard=false",
                 "eval.grid_size=4", "eval.n_samples=8"]




# --- the prior --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dist", ["normal", "uniform"])
def test_codes_ride_in_z_after_the_noise_with_their_distributions(dist):
    codes = CodeSpec((10, 3), 2, dist)
    prior = Prior(5, "uniform", codes=codes)
    assert prior.dim == 5 + 10 + 3 + 2 and codes.dim == 15
    z = prior.sample(30000, torch.device("cpu"), torch.Generator().manual_seed(0)).z
    assert z.shape == (30000, 20)
    noise, first, second, cont = z[:, :5], z[:, 5:15], z[:, 15:18], z[:, 18:]
    assert noise.min() >= -1 and noise.max() <= 1 and float(noise.var()) == pytest.approx(1 / 3, rel=0.03)
    for block, k in ((first, 10), (second, 3)):  # one-hot blocks, each value equally likely
        assert torch.equal(block.sum(1), torch.ones(30000)) and set(block.unique().tolist()) == {0.0, 1.0}
        torch.testing.assert_close(block.mean(0), torch.full((k,), 1 / k), atol=0.012, rtol=0)
    if dist == "normal":
        torch.testing.assert_close(cont.mean(0), torch.zeros(2), atol=0.02, rtol=0)
        torch.testing.assert_close(cont.var(0), torch.ones(2), atol=0.03, rtol=0)
    else:
        assert cont.min() >= -1 and cont.max() <= 1
        torch.testing.assert_close(cont.var(0), torch.full((2,), 1 / 3), atol=0.01, rtol=0)
    # The term slices the codes back from z.
    indices, c = codes.split(z)
    assert torch.equal(indices[0], first.argmax(1)) and torch.equal(indices[1], second.argmax(1))
    assert torch.equal(c, cont)
    fixed = codes.with_category(z[:4], 7)
    assert codes.split(fixed)[0][0].tolist() == [7] * 4 and torch.equal(fixed[:, :5], z[:4, :5])
    assert torch.equal(fixed[:, 15:], z[:4, 15:])


def test_an_infogan_snapshot_grid_has_one_row_per_value_of_the_first_categorical_code():
    prior = Prior(5, codes=CodeSpec((4, 3), 1))
    grid = prior.grid(10, torch.device("cpu"), torch.Generator().manual_seed(0))
    assert grid.y is None and len(grid.z) == 8  # whole rows: 4 values x 2 images
    (first, second), cont = prior.codes.split(grid.z)
    assert first.view(4, 2).T.eq(torch.arange(4)).all()  # row k holds code value k
    assert len(second.unique()) > 1 and cont.std() > 0  # the other codes and the noise are drawn per image
    assert len(Prior(5).grid(10, torch.device("cpu")).z) == 10  # no codes: a free grid


def test_a_prior_without_codes_draws_what_it_drew_before():
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    plain = Prior(4, "normal").sample(6, torch.device("cpu"), gen()).z
    assert torch.equal(plain, torch.randn(6, 4, generator=gen()))
    assert Prior(4).dim == 4 and not Prior(4).codes


def test_the_experiment_gives_g_the_noise_and_the_codes():
    from gankit.experiment import Experiment

    exp = Experiment(config.load(None, FAST + TOY_INFOGAN + ["model.z_dim=3"]))
    assert exp.prior.dim == 3 + 4 + 1
    assert exp.generator.hidden[0].in_features == 8
    assert exp.discriminator.q_head.codes == CodeSpec((4,), 1, "uniform")
    out = exp.discriminator(exp.data.sample(5).x)
    assert isinstance(out, DOutput) and out.heads["q"].shape == (5, 5)


# --- the term ---------------------------------------------------------------------------------------------------

def _ce(logits, y):  # -log softmax(logits)[y], averaged, written out
    return float(np.mean([math.log(sum(math.exp(v) for v in row)) - row[k] for row, k in zip(logits.tolist(), y.tolist())]))


def _term(**kw):
    args = dict(weight=1.0, d_weight=None, categorical_weight=1.0, continuous_weight=1.0, continuous="nll",
                sigma=1.0, train_trunk=True, d_every=1)
    args.update(kw)
    term = MutualInformation(**args)
    term.codes = CodeSpec((3,), 2, "uniform")
    return term


def _hand_made():
    """Two samples: noise (1 value), a 3-way code, 2 continuous codes; Q's logits and means."""
    z = torch.tensor([[0.3, 0.0, 1.0, 0.0, 0.5, -0.25], [-0.7, 0.0, 0.0, 1.0, -1.0, 0.75]])
    logits = torch.tensor([[0.2, 1.5, -0.3], [2.0, 0.0, 1.0]])
    mu = torch.tensor([[0.1, 0.0], [-0.5, 1.0]])
    return z, torch.cat([logits, mu], 1), logits, mu, torch.tensor([1, 2]), torch.tensor([[0.5, -0.25], [-1.0, 0.75]])


def test_mi_term_matches_its_formula_on_hand_made_outputs():
    z, q, logits, mu, c_cat, c = _hand_made()
    ce = _ce(logits, c_cat)
    sigma = 0.5
    # Gaussian NLL with fixed sigma, summed over the codes, averaged over the batch.
    nll = np.mean([sum((c[i, d].item() - mu[i, d].item()) ** 2 / (2 * sigma**2) + math.log(sigma)
                       + 0.5 * math.log(2 * math.pi) for d in range(2)) for i in range(2)])
    mse = float(np.mean([(c[i, d].item() - mu[i, d].item()) ** 2 for i in range(2) for d in range(2)]))
    term = _term(sigma=sigma, categorical_weight=0.7, continuous_weight=0.3)
    assert float(term.value(q, z)) == pytest.approx(0.7 * ce + 0.3 * nll, rel=1e-6)
    term = _term(continuous="mse", categorical_weight=2.0, continuous_weight=0.5)
    assert float(term.value(q, z)) == pytest.approx(2.0 * ce + 0.5 * mse, rel=1e-6)
    parts = term.parts(q, z).parts  # logged unweighted
    assert float(parts["categorical"]) == pytest.approx(ce, rel=1e-6)
    assert float(parts["continuous"]) == pytest.approx(mse, rel=1e-6)
    assert float(_term(continuous_weight=0.0).value(q, z)) == pytest.approx(ce, rel=1e-6)
    # In the objective: L_D = adversarial + d_weight * term, L_G = adversarial + weight * term, on D's output heads.
    ctx = StepContext(fake=torch.zeros(2, 1), fake_y=None, fake_out=DOutput(torch.zeros(2), {"q": q}), z=z,
                      networks={}, real=torch.zeros(2, 1), real_out=DOutput(torch.zeros(2), {}))
    obj = Objective(NonSaturatingLoss(), [_term(weight=0.5, d_weight=2.0)], ["infogan"])
    d_total, d_logged = obj.d_loss(ctx)
    value = ce + float(np.mean([sum((c[i, d].item() - mu[i, d].item()) ** 2 / 2 + 0.5 * math.log(2 * math.pi)
                                    for d in range(2)) for i in range(2)]))
    assert float(d_total) == pytest.approx(2 * math.log(2) + 2.0 * value, rel=1e-6)
    g_total, g_logged = obj.g_loss(ctx)
    assert float(g_total) == pytest.approx(math.log(2) + 0.5 * value, rel=1e-6)
    assert set(d_logged) == {"d_loss", "d_infogan", "d_infogan_categorical", "d_infogan_continuous"}
    assert set(g_logged) == {"g_loss", "g_infogan", "g_infogan_categorical", "g_infogan_continuous"}
    assert float(g_logged["g_infogan_categorical"]) == pytest.approx(ce, rel=1e-6)


def test_d_every_puts_the_term_on_one_d_step_in_k_by_the_trainers_step_index():
    z, q, *_ = _hand_made()
    term = _term(d_every=3)

    def due(d_index: int) -> bool:
        ctx = StepContext(fake=torch.zeros(2, 1), fake_y=None, fake_out=DOutput(torch.zeros(2), {"q": q}), z=z,
                          networks={}, d_index=d_index)
        return term.d_term(ctx) is not None

    assert [due(i) for i in range(7)] == [False, False, True, False, False, True, False]
    # the index, not a count of calls, decides: asking twice about one step gives one answer
    assert due(5) and due(5) and not due(6)


@pytest.mark.parametrize("train_trunk", [True, False])
def test_train_trunk_false_keeps_the_term_in_d_step_off_d_trunk(train_trunk):
    from gankit.models.mlp import mlp

    d = mlp("discriminator", (2,), 0, width=8, depth=2, q_head=True)
    d.attach_q_head(CodeSpec((3,), 2))
    x = torch.randn(6, 2)
    z = Prior(1, codes=CodeSpec((3,), 2)).sample(6, torch.device("cpu")).z
    ctx = StepContext(fake=x, fake_y=None, fake_out=d(x), z=z, networks={"discriminator": d})
    _term(train_trunk=train_trunk).d_term(ctx).value.backward()
    trunk = [p.grad for p in d.hidden.parameters()]
    assert all(g is not None for g in (p.grad for p in d.q_head.parameters()))
    assert all(g is not None and g.abs().sum() > 0 for g in trunk) == train_trunk
    assert all(g is None for g in trunk) == (not train_trunk)


# --- the metric -------------------------------------------------------------------------------------------------

def test_hungarian_matching_recovers_a_permuted_confusion():
    perm = [3, 0, 4, 1, 2]
    counts = torch.zeros(5, 5, dtype=torch.long)
    for k, c in enumerate(perm):
        counts[k, c] = 90
        counts[k, (c + 1) % 5] = 10  # 10% confusion with the next class
    accuracy, mapping = matched_accuracy(counts)
    assert mapping == perm and accuracy == pytest.approx(0.9)
    # The optimum of brute force over all bijections, on random (also non-square) count matrices.
    gen = torch.Generator().manual_seed(0)
    for rows, cols in ((5, 5), (4, 6), (6, 6)):
        for _ in range(10):
            m = torch.randint(0, 50, (rows, cols), generator=gen)
            best = max(sum(int(m[r, c]) for r, c in enumerate(p)) for p in itertools.permutations(range(cols), rows))
            got = best_matching(m)
            assert len(set(got)) == rows and sum(int(m[r, c]) for r, c in enumerate(got)) == best


# --- errors -----------------------------------------------------------------------------------------------------

def test_bad_infogan_configs_are_one_line_errors(tmp_path):
    def train(*overrides):
        return run_cli("train", "--out", str(tmp_path / "x"), *FAST, "train.steps=2", *overrides)

    assert_user_error(train("model.codes={categorical: [1]}"), "model.codes.categorical", ">= 2")
    assert_user_error(train("model.codes={continuous: -1}"), "model.codes.continuous", ">= 0")
    assert_user_error(train("model.codes={continuous_dist: cauchy}"), "model.codes.continuous_dist")
    assert_user_error(train("model.codes={categoricals: [10]}"), "model.codes.categoricals")
    assert_user_error(train("model.discriminator.q_head=true"), "q_head", "no codes")
    assert_user_error(train("model.codes={categorical: [4]}", "terms=[{name: infogan}]"), "terms.0", "no Q head",
                      "q_head: true")
    assert_user_error(train("model.generator.q_head=true"), "model.generator.q_head", "discriminator option")
    assert_user_error(train("model.codes={categorical: [4]}", "model.conditional=true"), "model.codes",
                      "model.conditional")
    assert_user_error(train(*TOY_INFOGAN, "terms=[{name: infogan, continuous_loss: l1}]"),
                      "terms.0.continuous_loss")
    assert_user_error(train(*TOY_INFOGAN, "terms=[{name: infogan, d_every: 0}]"), "terms.0.d_every", ">= 1")
    assert_user_error(train(*TOY_INFOGAN, "terms=[{name: infogan, phase: D}]"), "terms.0.phase")
    assert_user_error(train(*TOY_INFOGAN, "terms=[{name: infogan, phase: own, d_every: null}]"), "terms.0.d_every",
                      "phase: own")
    assert_user_error(train(*TOY_INFOGAN, "terms=[{name: infogan, phase: own, train_trunk: false}]"),
                      "terms.0.train_trunk", "phase: shared")
    assert not (tmp_path / "x").exists()


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("infogan") / "run"
    result = run_cli("train", "--out", str(run), *IMAGE_INFOGAN, "train.steps=2")
    assert result.returncode == 0, result.stderr
    return run


def test_sample_fixes_the_categorical_code_and_draws_a_traversal(image_run, tmp_path):
    from PIL import Image

    out = tmp_path / "s.npz"
    assert run_cli("sample", str(image_run), "-n", "5", "--class", "2", "--out", str(out)).returncode == 0
    saved = np.load(out)
    assert saved["samples"].shape == (5, 1, 28, 28) and saved["labels"].tolist() == [2] * 5
    assert run_cli("sample", str(image_run), "-n", "6", "--out", str(out)).returncode == 0
    assert set(np.load(out)["labels"].tolist()) <= {0, 1, 2}  # the drawn categorical code
    fig = tmp_path / "t.png"
    assert run_cli("sample", str(image_run), "--traversal", "1", "--columns", "5", "--out", str(fig)).returncode == 0
    assert np.asarray(Image.open(fig)).shape[:2] == (2 + 3 * 30, 2 + 5 * 30)  # 3 code values x 5 steps of code 1
    # the run wrote each continuous code's traversal at the end of training, the same figure at 10 columns
    for code in (0, 1):
        assert np.asarray(Image.open(image_run / "samples" / f"traversal_c{code}.png")).shape[:2] == (
            2 + 3 * 30, 2 + 10 * 30)
    default = tmp_path / "t1.png"
    assert run_cli("sample", str(image_run), "--traversal", "1", "--out", str(default)).returncode == 0
    assert np.array_equal(np.asarray(Image.open(default)),
                          np.asarray(Image.open(image_run / "samples" / "traversal_c1.png")))
    assert_user_error(run_cli("sample", str(image_run), "-n", "2", "--class", "3", "--out", str(out)), "class 3",
                      "0..2")
    assert_user_error(run_cli("sample", str(image_run), "--traversal", "2", "--out", str(fig)), "continuous code 2",
                      "0..1")
    assert_user_error(run_cli("sample", str(image_run), "--traversal", "0", "--out", str(tmp_path / "t.npz")),
                      ".png")
    assert_user_error(run_cli("sample", str(image_run), "--traversal", "0", "--class", "1", "--out", str(fig)),
                      "not both")
    assert_user_error(run_cli("eval", str(image_run), "--metrics", "infogan"), "infogan", "noise_images")
    assert_user_error(run_cli("eval", str(image_run), "--metrics", "fid,infogn"), "infogn", "infogan")


def test_traversal_latents_vary_one_code_along_the_columns():
    prior = Prior(3, "normal", codes=CodeSpec((4,), 2, "normal"))
    z = traversal_latents(prior, 1, columns=5, span=2.0, seed=0, device=torch.device("cpu"))
    assert z.shape == (20, 3 + 4 + 2)
    grid = z.view(4, 5, 9)
    assert torch.equal(grid[:, :, :3], z[:1, :3].expand(4, 5, 3))  # the same noise in every cell
    assert grid[:, :, 3:7].argmax(-1).tolist() == [[r] * 5 for r in range(4)]  # row r: categorical value r
    torch.testing.assert_close(grid[0, :, 8], torch.linspace(-2, 2, 5))  # code 1 along the columns
    assert grid[:, :, 7].abs().sum() == 0  # the other continuous code at the prior's centre


def test_the_infogan_metric_needs_an_infogan_run(tmp_path):
    run = tmp_path / "plain"
    assert run_cli("train", "--out", str(run), *FAST, "train.steps=2").returncode == 0
    assert_user_error(run_cli("eval", str(run), "--metrics", "infogan"), "infogan")
    assert_user_error(run_cli("train", "--out", str(tmp_path / "y"), *FAST, "data=noise_images",
                              "eval.metrics=[infogan]"), "eval.metrics", "InfoGAN runs")


# --- resume -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("phase", ["shared", "own"])
def test_interrupted_and_resumed_infogan_run_equals_uninterrupted_run(tmp_path, phase):
    term = "terms=[{name: infogan, d_every: 2}]" if phase == "shared" else "terms=[{name: infogan, phase: own}]"
    overrides = FAST + TOY_INFOGAN + [term, "train.steps=20", "train.checkpoint_every=7",
                                      "model.discriminator.q_hidden=4"]
    # killed right after its first checkpoint, then resumed
    full, resumed, resumed_at = full_and_resumed(lambda name: Trainer.start(config.load(None, overrides), tmp_path / name))
    assert resumed_at == 7
    for name, net in full.exp.networks.items():
        other = resumed.exp.networks[name].state_dict()
        for key, value in net.state_dict().items():
            torch.testing.assert_close(value, other[key], rtol=0, atol=0, msg=f"{name}.{key}")
    logged = [json.loads(line) for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    if phase == "shared":
        assert any("d_infogan" in r and "g_infogan" in r for r in logged)
    else:  # the term's own step, logged under its name
        assert any("infogan" in r for r in logged) and not any("d_infogan" in r or "g_infogan" in r for r in logged)


# --- the term's own step (phase: own, the reference's Q step) -----------------------------------------------------

OWN_PHASE = FAST + TOY_INFOGAN + ["terms=[{name: infogan, phase: own, weight: 0.5, d_weight: 2.0}]"]


def _adam_steps(trainer: Trainer, net: torch.nn.Module) -> list[int]:
    """Adam's step count of each parameter of ``net`` (0 for one never stepped)."""
    opt = next(o for name, o in trainer.exp.optimizers.items() if trainer.exp.networks[name] is net)
    return [int(opt.state[p]["step"]) if p in opt.state else 0 for p in net.parameters()]


def test_an_own_phase_term_leaves_d_and_g_losses_and_takes_one_step_of_both_per_g_step(tmp_path):
    trainer = Trainer.start(config.load(None, OWN_PHASE), tmp_path / "run")
    for _ in range(3):
        d_terms, g_terms = trainer.train_step()
    assert "d_infogan" not in d_terms and "g_infogan" not in g_terms and "infogan" in g_terms
    d, g = trainer.exp.discriminator, trainer.exp.generator
    # n_critic 2: D's trunk steps in its 2 D steps and in the term's step; Q's head, which only the term trains,
    # once per G step; D's logit layer never in the term's step; G in its own step and in the term's
    steps = dict(zip([n for n, _ in d.named_parameters()], _adam_steps(trainer, d)))
    assert {n: k for n, k in steps.items() if n.startswith("q_head")} and all(
        k == 3 for n, k in steps.items() if n.startswith("q_head"))
    assert all(k == 9 for n, k in steps.items() if n.startswith("hidden"))
    assert all(k == 6 for n, k in steps.items() if not n.startswith(("hidden", "q_head")))
    assert set(_adam_steps(trainer, g)) == {6}


def test_an_own_phase_step_moves_each_player_by_its_weight_times_the_terms_gradient(tmp_path, monkeypatch):
    trainer = Trainer.start(config.load(None, OWN_PHASE), tmp_path / "run")
    exp = trainer.exp
    for opt in exp.optimizers.values():  # keep the weights where they are, to compare the gradients they got
        monkeypatch.setattr(opt, "step", lambda *a, **k: None)
    name, term = exp.objective.own_phase[0]
    rng = torch.get_rng_state()
    trainer.own_step(name, term)
    torch.set_rng_state(rng)
    z, _ = exp.prior.sample(trainer.g_batch_size, exp.device)
    value = term.value(exp.discriminator(exp.generator(z)).heads["q"], z)
    g_params, d_params = list(exp.generator.parameters()), list(exp.discriminator.parameters())
    grads = torch.autograd.grad(value, g_params + d_params, allow_unused=True)
    for p, grad in zip(g_params, grads[:len(g_params)]):
        torch.testing.assert_close(p.grad, 0.5 * grad)
    for p, grad in zip(d_params, grads[len(g_params):]):
        if grad is None:  # D's logit layer is not in the term's graph
            assert p.grad is None
        else:
            torch.testing.assert_close(p.grad, 2.0 * grad)


# --- learning on MNIST ------------------------------------------------------------------------------------------

@pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason="../shared/data/mnist is absent")
def test_short_mnist_infogan_run_ties_the_categorical_code_to_the_digits(tmp_path, monkeypatch):
    """The paper's training protocol on small DCGAN networks for 2 CPU cores (width 16, no batch norm, batch 64,
    300 of 5,000 steps; about 15 CPU seconds; the paper's own networks learn the code far more slowly, see
    docs/infogan.md): the categorical code's matched accuracy against the shipped classifier is far above chance (0.1)
    and Q recovers the code. Measured: 0.34 at 300 steps (seed 0); between 200 and 600 steps 0.34-0.58 over seeds
    0 and 1 (docs/infogan.md)."""
    import shutil

    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in (SHARED_DATA / "mnist").glob("*.gz"):
        shutil.copy(f, raw / f.name)
    monkeypatch.setenv("GANKIT_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("GANKIT_METRICS_CACHE", str(tmp_path / "cache"))
    cfg = config.load("mnist_infogan_paper", MNIST_SHORT)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small convolutions: one thread is faster, and robust when the cores are shared
    try:
        results = Trainer.start(cfg, tmp_path / "run").fit()
    finally:
        torch.set_num_threads(threads)
    info = results["infogan"]
    assert info["value"] >= 0.25, info
    assert info["q_accuracy"] >= 0.9 and info["mi_categorical"] > 1.0, info  # of at most log 10 = 2.30 nats
    assert sorted(info["matching"].values()) == list(range(10)) and len(info["per_code_accuracy"]) == 10


MNIST_SHORT = ["train.progress=false", "train.tensorboard=false", "train.steps=300", "train.sample_every=0",
               "train.batch_size=64", "model.generator={name: dcgan, width: 16, multipliers: [2, 1], batch_norm: false}",
               "model.discriminator={name: dcgan, width: 16, multipliers: [2, 1], batch_norm: false, q_head: true, "
               "q_hidden: 32}", "eval.n_samples=1000", "data.limit=20000", "train.device=cpu"]


# --- the paper's networks (appendix C.1) --------------------------------------------------------------------------

# MNIST's shape without MNIST's files: the network checks need no real digits, and CI has no copy at the default root.
MNIST_SHAPED = "data={name: noise_images, n: 8, channels: 1, resolution: 28}"

def test_the_paper_networks_have_the_papers_layers_maps_and_parameter_counts():
    """Chen et al. 2016, appendix C.1: every layer's shape, the maps between them, and the parameter counts
    recomputed here from that list (weights + biases per layer, scale + shift per batch norm)."""
    exp = Experiment(config.load("mnist_infogan_paper", ["train.device=cpu", MNIST_SHAPED]))
    g, d = exp.generator, exp.discriminator
    linear = lambda i, o: i * o + o  # noqa: E731
    conv = lambda i, o, k=4: i * o * k * k + o  # noqa: E731
    bn = lambda c: 2 * c  # noqa: E731
    assert exp.prior.dim == 74  # 62 noise + one 10-way code + 2 continuous codes
    assert sum(p.numel() for p in g.parameters()) == (linear(74, 1024) + bn(1024) + linear(1024, 7 * 7 * 128)
                                                      + bn(7 * 7 * 128) + conv(128, 64) + bn(64) + conv(64, 1))
    q = sum(p.numel() for p in d.q_head.parameters())
    assert q == linear(1024, 128) + bn(128) + linear(128, 10 + 2)
    assert sum(p.numel() for p in d.parameters()) - q == (conv(1, 64) + conv(64, 128) + bn(128)
                                                          + linear(7 * 7 * 128, 1024) + bn(1024) + linear(1024, 1))
    maps = []
    hooks = [m.register_forward_hook(lambda m, i, o: maps.append((type(m).__name__, tuple(o.shape[1:]))))
             for m in [*g.modules(), *d.modules()] if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d,
                                                                      torch.nn.Linear, torch.nn.LeakyReLU))]
    g.eval(), d.eval()
    with torch.no_grad():
        out = d(g(exp.prior.sample(3, torch.device("cpu")).z))
    for h in hooks:
        h.remove()
    linears = [shape for name, shape in maps if name != "LeakyReLU"]
    assert linears == [(1024,), (6272,), (64, 14, 14), (1, 28, 28),  # G
                       (64, 14, 14), (128, 7, 7), (1024,), (1,), (128,), (12,)]  # D, then Q on D's FC 1024
    assert {m.negative_slope for m in d.modules() if isinstance(m, torch.nn.LeakyReLU)} == {0.01}
    assert out.logit.shape == (3,) and out.heads["q"].shape == (3, 12)
    assert out.heads["q_features"].shape == (3, 1024)


def test_the_paper_networks_without_batch_norm_keep_every_other_layer():
    """batch_norm: false (the reference README's experiment): no batch norm in G, D or Q, the same linear and
    convolution layers (Q's hidden FC keeps its bias), and D's output and Q's heads unchanged in shape."""
    off = ["model.generator.batch_norm=false", "model.discriminator.batch_norm=false"]
    with_bn = Experiment(config.load("mnist_infogan_paper", ["train.device=cpu", MNIST_SHAPED]))
    without = Experiment(config.load("mnist_infogan_paper", ["train.device=cpu", MNIST_SHAPED, *off]))
    norms = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)
    for net in ("generator", "discriminator"):
        a, b = with_bn.networks[net], without.networks[net]
        assert not any(isinstance(m, norms) for m in b.modules())
        assert sum(isinstance(m, norms) for m in a.modules()) == 3  # G: 3; D: 2 in its trunk + 1 in Q
        layers = lambda n: [tuple(p.shape) for name, m in n.named_modules()  # noqa: E731
                            if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d))
                            for p in [m.weight]]
        assert layers(a) == layers(b)
    d = without.discriminator
    assert d.q_head.net[0].bias is not None
    d.eval(), without.generator.eval()
    with torch.no_grad():
        out = d(without.generator(without.prior.sample(3, torch.device("cpu")).z))
    assert out.logit.shape == (3,) and out.heads["q"].shape == (3, 12)


def test_the_paper_networks_refuse_other_data_and_bad_sizes(tmp_path):
    base = ["--out", str(tmp_path / "r"), "train.steps=1", MNIST_SHAPED]
    assert_user_error(run_cli("train", "mnist_infogan_paper", *base, "data={name: noise_images, n: 8, channels: 3, "
                           "resolution: 32}"), "infogan_mnist", "1x28x28")
    assert_user_error(run_cli("train", "mnist_infogan_paper", *base, "model.discriminator.fc_units=0"), "fc_units")
    assert_user_error(run_cli("train", "mnist_infogan_paper", *base, "model.generator.q_head=true"), "q_head")


def test_d_every_null_is_once_per_g_step_whatever_n_critic_is():
    z, q, *_ = _hand_made()
    term = _term(d_every=None)
    for n_critic in (1, 3, 5):
        due = [term.d_term(StepContext(fake=torch.zeros(2, 1), fake_y=None, fake_out=DOutput(torch.zeros(2), {"q": q}),
                                       z=z, networks={}, d_index=i, n_critic=n_critic)) is not None
               for i in range(2 * n_critic)]
        assert due == ([False] * (n_critic - 1) + [True]) * 2
