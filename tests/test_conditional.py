"""Conditioning and extra networks in the engine: labelled data, the prior, the ACGAN term, penalties with labels,
conditional training on the ring (and MNIST when the data is present), sampling by class, and the errors."""
import math

import numpy as np
import pytest
import torch

from gankit import config
from gankit.data.toy import ring
from gankit.models.conditional import DOutput
from gankit.objective import Objective, StepContext
from gankit.losses import NonSaturatingLoss
from gankit.methods.acgan import AuxiliaryClassification
from gankit.prior import Prior
from gankit.regularizers import DStepContext, R1
from gankit.train import Trainer
from gankit_testing import FAST, SHARED_DATA, assert_user_error, run_cli_here as run_cli  # in this process




def test_toy_batches_carry_their_mode_as_label():
    data = ring(n=2000, std=0.01)
    assert data.n_classes == 8
    x, y = data.sample(500)
    nearest = torch.cdist(x, data.info["means"]).argmin(1)
    assert torch.equal(nearest, y)


def test_dequantized_batches_spread_each_pixel_over_its_quantization_step():
    from gankit.data.base import InMemoryData

    for value in (0, 77, 255):
        data = InMemoryData(torch.full((8, 1, 16, 16), value, dtype=torch.uint8), "image", dequantize=True)
        offset = data.sample(256).x.double() - (value / 128 - 1)
        assert offset.min() >= -1e-6 and offset.max() < 1 / 128 + 1e-6
        assert float(offset.std()) == pytest.approx((1 / 128) / math.sqrt(12), rel=0.03)  # uniform over the step
    plain = InMemoryData(torch.full((8, 1, 4, 4), 255, dtype=torch.uint8), "image")
    assert torch.equal(plain.sample(4).x, torch.ones(4, 1, 4, 4))


def test_prior_draws_normal_or_uniform_noise_and_classes_by_frequency():
    gen = torch.Generator().manual_seed(0)
    z = Prior(3, "uniform").noise(20000, torch.device("cpu"), gen)
    assert z.min() >= -1 and z.max() <= 1 and abs(float(z.mean())) < 0.02 and float(z.var()) == pytest.approx(1 / 3, rel=0.03)
    z = Prior(3, "normal").noise(20000, torch.device("cpu"), gen)
    assert float(z.var()) == pytest.approx(1.0, rel=0.03)
    probs = torch.tensor([0.7, 0.2, 0.1])
    y = Prior(3, n_classes=3, class_probs=probs).classes(20000, torch.device("cpu"), gen)
    torch.testing.assert_close(torch.bincount(y, minlength=3) / 20000, probs, atol=0.015, rtol=0)
    assert Prior(3).classes(5, torch.device("cpu")) is None
    grid = Prior(3, n_classes=10).grid(100, torch.device("cpu")).y
    assert grid.view(10, 10).T.eq(torch.arange(10)).all()  # row k holds class k
    assert len(Prior(3, n_classes=10).grid(64, torch.device("cpu")).y) == 60  # whole rows


def _ctx(real_logits, fake_logits, real_y, fake_y):
    b = len(real_y)
    out = lambda logits: DOutput(torch.zeros(b), {"class": logits})  # noqa: E731
    return StepContext(fake=torch.zeros(b, 2), fake_y=fake_y, fake_out=out(fake_logits), z=torch.zeros(b, 1),
                       networks={}, real=torch.zeros(b, 2), real_y=real_y, real_out=out(real_logits))


def _ce(logits, y):  # -log softmax(logits)[y], averaged, written out
    return float(np.mean([math.log(sum(math.exp(v) for v in row)) - row[k] for row, k in zip(logits.tolist(), y.tolist())]))


def test_aux_class_matches_its_formula_on_hand_made_logits():
    real_logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    fake_logits = torch.tensor([[0.0, 1.0, 0.0], [-2.0, 0.0, 2.0]])
    real_y, fake_y = torch.tensor([0, 1]), torch.tensor([1, 2])
    ctx = _ctx(real_logits, fake_logits, real_y, fake_y)
    ref = AuxiliaryClassification(1.0, None, "reference", None)
    paper = AuxiliaryClassification(1.0, None, "paper", None)
    assert float(ref.d_term(ctx)) == pytest.approx(_ce(real_logits, real_y), rel=1e-6)
    assert float(paper.d_term(ctx)) == pytest.approx(_ce(real_logits, real_y) + _ce(fake_logits, fake_y), rel=1e-6)
    assert float(ref.g_term(ctx)) == pytest.approx(_ce(fake_logits, fake_y), rel=1e-6)
    # In the objective: L_D = adversarial + d_weight * term; L_G = adversarial + weight * term.
    obj = Objective(NonSaturatingLoss(), [AuxiliaryClassification(0.5, 2.0, "reference", None)], ["aux_class"])
    d_total, d_logged = obj.d_loss(ctx)
    assert float(d_total) == pytest.approx(2 * math.log(2) + 2.0 * _ce(real_logits, real_y), rel=1e-6)
    g_total, g_logged = obj.g_loss(ctx)
    assert float(g_total) == pytest.approx(math.log(2) + 0.5 * _ce(fake_logits, fake_y), rel=1e-6)
    assert set(d_logged) == {"d_loss", "d_aux_class"} and set(g_logged) == {"g_loss", "g_aux_class"}


def test_r1_of_a_conditional_critic_uses_the_real_labels():
    """D(x, y) = <w_y, x>: grad_x = w_y, so R1 = 1/2 mean ||w_{y_real}||^2 and R2 uses the fake labels."""
    w = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    critic = lambda x, y=None: (x * w[y]).sum(1)  # noqa: E731
    x = torch.randn(4, 2)
    real_y, fake_y = torch.tensor([0, 0, 0, 0]), torch.tensor([1, 1, 1, 1])
    ctx = DStepContext(critic, x, x, critic(x, real_y), critic(x, fake_y), real_y, fake_y)
    assert float(R1(1.0, 1).penalty(ctx)) == pytest.approx(0.5)
    from gankit.regularizers import R2
    assert float(R2(1.0, 1).penalty(ctx)) == pytest.approx(4.5)


def test_ring_cgan_puts_each_requested_mode_on_that_mode(tmp_path):
    """The shipped ring_cgan config, 400 of its steps: at least 90% of the samples for each class land nearest that
    mode. Measured (one thread, 2026-12-07): the worst class at 0.996-1.0 at 300 steps and 1.0 at 500 on 4 seeds."""
    cfg = config.load("ring_cgan", ["train.progress=false", "train.tensorboard=false", "train.steps=400",
                                    "eval.n_samples=2000"])
    results = Trainer.start(cfg, tmp_path / "run").fit()
    assert min(results["class_accuracy_per_class"]) >= 0.9, results
    assert results["modes"] == 8


def _ring_cgan_run(tmp_path):
    run = tmp_path / "run"
    result = run_cli("train", "ring_cgan", "--out", str(run), *FAST, "train.steps=20")
    assert result.returncode == 0, result.stderr
    return run


def test_sample_by_class_and_per_class(tmp_path):
    run = _ring_cgan_run(tmp_path)
    out = tmp_path / "s.npz"
    assert run_cli("sample", str(run), "-n", "7", "--class", "3", "--out", str(out)).returncode == 0
    saved = np.load(out)
    assert saved["samples"].shape == (7, 2) and saved["labels"].tolist() == [3] * 7
    assert run_cli("sample", str(run), "-n", "2", "--per-class", "--out", str(out)).returncode == 0
    assert np.load(out)["labels"].tolist() == [c for c in range(8) for _ in range(2)]
    assert_user_error(run_cli("sample", str(run), "-n", "2", "--class", "8", "--out", str(out)), "class 8",
                      "0..7")
    assert_user_error(run_cli("sample", str(run), "-n", "2", "--class", "1", "--per-class", "--out", str(out)),
                      "not both")


def test_conditional_errors_are_one_line(tmp_path):
    assert_user_error(run_cli("train", "--out", str(tmp_path / "a"), *FAST, "data=noise_images",
                              "data.n=10", "model.conditional=true"), "model.conditional", "no class labels")
    assert_user_error(run_cli("train", "--out", str(tmp_path / "b"), *FAST, "model.conditional=true",
                              "model.generator.condition=none"), "model.generator ignores the labels")
    assert_user_error(run_cli("train", "--out", str(tmp_path / "c"), *FAST, "model.discriminator.condition=concat"),
                      "model.discriminator.condition", "needs class labels")
    assert_user_error(run_cli("train", "--out", str(tmp_path / "d"), *FAST, "model.conditional=true",
                              "terms=[{name: aux_class}]"), "terms.0", "class_head: true")
    assert_user_error(run_cli("train", "--out", str(tmp_path / "e"), *FAST, "model.conditional=true",
                              "terms=[{name: aux_class, classifier: clf}]"), "model.networks.clf")
    assert_user_error(run_cli("train", "--out", str(tmp_path / "f"), *FAST, "model.networks={x: mlp}"),
                      "model.networks.x is not used")
    run = _ring_cgan_run(tmp_path)
    unconditional = tmp_path / "u"
    assert run_cli("train", "--out", str(unconditional), *FAST, "train.steps=5").returncode == 0
    assert_user_error(run_cli("sample", str(unconditional), "-n", "2", "--class", "0", "--out",
                              str(tmp_path / "x.npz")), "conditional run")
    assert run.exists()


def test_bad_inputs_are_one_line_errors(tmp_path):
    binary = tmp_path / "bad.yaml"
    binary.write_bytes(bytes(range(256)))
    assert_user_error(run_cli("train", str(binary)), "not a text file")
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert_user_error(run_cli("train", "--out", str(a_file), *FAST, "train.steps=5"), "is a file")
    assert a_file.read_text() == "x"
    run = tmp_path / "run"
    assert run_cli("train", "--out", str(run), *FAST, "train.steps=5").returncode == 0
    assert_user_error(run_cli("sample", str(run), "-n", "2", "--out", "/proc/x/s.npz"), "/proc/x")


def test_conditional_image_run_grid_has_one_row_per_class(tmp_path):
    from PIL import Image

    cli = run_cli
    folder = tmp_path / "imgs"
    for c, value in (("dark", 20), ("light", 230)):
        (folder / c).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(folder / c / f"{i}.png")
    run = tmp_path / "run"
    result = cli("train", "--out", str(run), "data={name: image_folder, labels: true, resolution: 28, cache: false}",
                 f"data.path={folder}", "model.conditional=true", "model.generator={name: dcgan, width: 4}",
                 "model.discriminator={name: dcgan, width: 4}", "regularizers=[]", "train.steps=3",
                 "train.batch_size=4", "train.progress=false", "train.tensorboard=false", "eval.grid_size=6",
                 "eval.n_samples=4")
    assert result.returncode == 0, result.stderr
    grid = np.asarray(Image.open(run / "samples" / "step_000003.png"))
    assert grid.shape[0] == 2 + 2 * (28 + 2)  # two rows of 28 px with 2 px padding: one per class
    out = tmp_path / "pc.png"
    assert cli("sample", str(run), "-n", "3", "--per-class", "--out", str(out)).returncode == 0
    assert np.asarray(Image.open(out)).shape[:2] == (2 + 2 * 30, 2 + 3 * 30)
    folder_out = tmp_path / "each"
    assert cli("sample", str(run), "-n", "2", "--class", "1", "--out", str(folder_out)).returncode == 0
    assert sorted(p.name for p in folder_out.iterdir()) == ["0_class-1.png", "1_class-1.png"]


@pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason="../shared/data/mnist is absent")
# mnist_cgan conditions more slowly (0.22 at 500 steps, 0.26 at 600, seed 0): its short run (37 s) left the suite
# to keep it under 8 minutes; its full-length result is in docs/conditional.md.
@pytest.mark.parametrize("name, steps, floor", [("mnist_acgan", 250, 0.25)])
def test_mnist_short_run_generates_the_requested_digits(tmp_path, monkeypatch, name, steps, floor):
    """The shipped MNIST configs, shortened to 250 of their 6,000 steps: the shipped classifier confirms the
    requested class above chance (0.10 +- 0.013 on 500 samples). Measured (one thread, 2026-12-07): 0.376 and 0.440
    at 250 steps (seeds 0 and 1), 0.67 at 500; the full run: 0.99, docs/conditional.md."""
    import shutil

    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in (SHARED_DATA / "mnist").glob("*.gz"):
        shutil.copy(f, raw / f.name)
    monkeypatch.setenv("GANKIT_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("GANKIT_METRICS_CACHE", str(tmp_path / "cache"))
    cfg = config.load(name, ["train.progress=false", "train.tensorboard=false", f"train.steps={steps}",
                             "train.sample_every=0", "eval.n_samples=500", "eval.metrics=[cacc]", "data.limit=20000"])
    results = Trainer.start(cfg, tmp_path / "run").fit()
    assert results["cacc"]["value"] >= floor, results["cacc"]
    assert results["cacc"]["protocol"]["n_per_class"] == 50
