"""gankit lab without a browser: the runs are gankit's own training (the page's YAML trains the same weights), two
runs do not disturb each other, the phases step as the schedule, and every bad input is one message."""
import json
import math
import urllib.error
import urllib.request

import pytest
import torch

from gankit.experiment import load_run
from gankit.lab import setup as lab_setup
from gankit.lab.server import serve
from gankit.lab.session import Lab
from gankit_testing import assert_user_error, run_cli_here

SMALL = {"width": 32, "depth": 2, "batch_size": 64, "steps": 12}


@pytest.fixture
def lab():
    lab = Lab()
    yield lab
    lab.close()


def setup(lab: Lab, **changes):
    return {**lab.initial, **SMALL, **changes}


def test_the_pages_yaml_trains_the_same_weights_even_with_two_runs_interleaved(lab, tmp_path):
    lab.start("a", setup(lab, n_critic=2, regularizers=[{"name": "r1", "weight": 1.0}]))
    lab.start("b", setup(lab, loss="wgan", regularizers=[{"name": "gp", "weight": 1.0}]))
    for _ in range(3):  # run B draws noise between A's steps: A must not notice
        lab.advance("a", "train", 3)
        lab.advance("b", "train", 2)
    lab.frame("a")  # drawing moves nothing either
    lab.advance("a", "train", 100)  # stops at train.steps
    assert lab.run("a").step == SMALL["steps"] and lab.frame("a")["done"]
    (tmp_path / "a.yaml").write_text(lab.yaml("a"))
    assert run_cli_here("train", str(tmp_path / "a.yaml"), "--out", str(tmp_path / "run")).returncode == 0
    cli = load_run(tmp_path / "run").exp
    for name in ("generator", "discriminator"):
        mine, theirs = lab.run("a").exp.networks[name].state_dict(), cli.networks[name].state_dict()
        assert all(torch.equal(mine[k], theirs[k]) for k in theirs), name


def test_phases_follow_the_schedule_and_stepping_off_it_is_flagged(lab):
    lab.start("a", setup(lab, n_critic=2))
    f = lab.advance("a", "d")
    assert (f["phase"], f["step"], f["d_steps"], f["off_schedule"]) == (1, 0, 1, False)
    f = lab.advance("a", "d")
    f = lab.advance("a", "g")
    assert (f["phase"], f["step"], f["d_steps"], f["off_schedule"]) == (0, 1, 2, False)
    assert "NOTE" not in lab.yaml("a")
    f = lab.advance("a", "g")  # a G step with no D step before it
    assert f["off_schedule"] and f["step"] == 2 and "stepped off the schedule" in lab.yaml("a")
    f = lab.advance("a", "train", 1)
    assert (f["phase"], f["step"], f["d_steps"]) == (0, 3, 4)
    assert set(f["losses"]) == {"d_loss", "g_loss"} and [s for s, _ in f["losses"]["g_loss"]] == [1, 2, 3]


def test_a_frame_draws_d_the_arrows_g_follows_and_the_manifold(lab):
    f = lab.start("a", setup(lab))
    assert len(f["heat"]) == f["heat_side"] ** 2 and len(f["manifold"]) == f["manifold_side"] ** 2
    assert len(f["real"]) > 100 and len(f["fake"]) > 100 and f["metrics"][0]["n_modes"] == 8
    # NS loss: G minimises softplus(-D(x)), so its arrow is sigmoid(-D(x)) * grad D(x)
    d = lab.run("a").exp.discriminator
    x = torch.tensor([a[:2] for a in f["arrows"]], requires_grad=True)
    logit = d(x).reshape(-1)
    (grad,) = torch.autograd.grad(logit.sum(), x)
    expected = torch.sigmoid(-logit.detach())[:, None] * grad
    assert torch.allclose(torch.tensor([a[2:] for a in f["arrows"]]), expected, atol=2e-4)


def test_drawn_points_are_the_data_and_the_modes(lab):
    pts = [[0.0, 0.0], [1.0, 0.5], [-0.5, 1.0]]
    f = lab.start("a", setup(lab, dataset="drawn", points=pts))
    real = torch.tensor(f["real"])
    nearest = torch.cdist(real, torch.tensor(pts)).min(1).values
    assert nearest.max() < 0.2 and f["metrics"][0]["n_modes"] == 3
    assert "points:" in lab.yaml("a")


def test_a_packed_run_and_a_relativistic_run_draw(lab):
    f = lab.advance("a", "train", 2) if lab.start("a", setup(lab, pack=4, batch_size=64)) else None
    assert f["step"] == 2 and len(f["heat"]) == f["heat_side"] ** 2 and len(f["arrows"]) % 4 == 0
    f = lab.start("b", setup(lab, loss="rpgan", regularizers=[{"name": "r1", "weight": 1}, {"name": "r2", "weight": 1}]))
    assert all(math.isfinite(v) for a in f["arrows"] for v in a)


@pytest.mark.parametrize("changes, needle", [
    ({"lr_g": -1}, "G learning rate"), ({"lr_d": "fast"}, "D learning rate"), ({"batch_size": 2.5}, "whole"),
    ({"batch_size": 63, "pack": 2}, "pack"), ({"dataset": "drawn", "points": []}, "drawing is empty"),
    ({"loss": "nope"}, "unknown loss"), ({"regularizers": [{"name": "r1", "weight": -1}]}, "weight of r1"),
    ({"optimizer": "lion"}, "optimiser"), ({"depth": float("nan")}, "finite"), ({"dataset": "mnist"}, "data set"),
])
def test_bad_setups_are_one_message_and_leave_the_run_as_it_was(lab, changes, needle):
    lab.start("a", setup(lab))
    before = lab.run("a")
    with pytest.raises(Exception) as info:
        lab.start("a", setup(lab, **changes))
    assert needle in str(info.value) and "\n" not in str(info.value)
    assert lab.run("a") is before


def _call(url: str, body=None):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=30) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_the_server_answers_every_mistake_with_one_message_and_keeps_serving(tmp_path):
    lab = Lab()
    server = serve(lab, port=0)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        status, page = _call(url + "/")
        assert status == 200 and b"gankit lab" in page
        for path, body, needle in [("/api/step", {"slot": "a", "what": "train", "n": 1}, "not been started"),
                                   ("/api/start", b"{not json", "not valid JSON"),
                                   ("/api/start", {"slot": "c", "setup": {}}, "unknown run"),
                                   ("/api/start", {"slot": "a", "setup": "x"}, "setup"),
                                   ("/api/replay", {"path": str(tmp_path)}, "holds no gankit run"),
                                   ("/api/nothing", {}, "no such page")]:
            status, reply = _call(url + path, body)
            assert status in (400, 404) and needle in json.loads(reply)["error"], (path, reply)
        status, reply = _call(url + "/api/init")
        init = json.loads(reply)
        assert status == 200 and "r1" in init["choices"]["regularizers"] and init["replay"] is None
        ok = {"slot": "a", "setup": {**init["setup"], **SMALL}}
        assert _call(url + "/api/start", ok)[0] == 200
        status, reply = _call(url + "/api/step", {"slot": "a", "what": "train", "n": 3})
        assert status == 200 and json.loads(reply)["step"] == 3
        status, reply = _call(url + "/api/step", {"slot": "a", "what": "train", "n": 0})
        assert status == 400 and "steps per frame" in json.loads(reply)["error"]
        status, text = _call(url + "/api/yaml?slot=a")
        assert status == 200 and b"loss:" in text
    finally:
        server.shutdown()
        server.server_close()
        lab.close()


def test_a_cli_run_directory_replays_from_its_snapshots(lab, tmp_path):
    out = tmp_path / "run"
    assert run_cli_here("train", "--out", str(out), "train.steps=6", "train.snapshot_steps=[2,4]",
                        "model.generator.width=16", "model.discriminator.width=16", "train.batch_size=32",
                        "data.n=2000", "eval.n_samples=300", "train.progress=false",
                        "train.log_every=2").returncode == 0
    f = lab.open_replay(str(out))
    assert f["count"] == 3 and f["steps"] == [2, 4, 6] and len(f["fake"]) == 300 and "d_loss" in f["losses"]
    assert lab.replay_frame(2)["step"] == 6 and len(lab.replay_frame(2)["metrics"]) == 3
    with pytest.raises(Exception, match="snapshot 3 does not exist"):
        lab.replay_frame(3)


def test_gankit_lab_refuses_image_configs_and_bad_ports_in_one_line(tmp_path):
    assert_user_error(run_cli_here("lab", "mnist_dcgan"), "2-D data")
    assert_user_error(run_cli_here("lab", "--port", "70000"), "--port")
    assert_user_error(run_cli_here("lab", "--run", str(tmp_path)), "holds no gankit run")


def test_setup_of_a_shipped_config_round_trips():
    base = lab_setup.base_config("ring_gan_r1")
    from gankit import config

    cfg = config.load(None, base=base)
    again = lab_setup.build_config(base, lab_setup.setup_of(cfg))
    assert again.to_dict() == cfg.to_dict()


def test_a_simultaneous_config_trains_in_the_lab_as_gankit_train_does(tmp_path):
    """PacGAN's configs update G and D from one forward pass (train.updates: simultaneous): the lab's whole G steps
    are that phase, so its weights equal a `gankit train` of the page's YAML."""
    from gankit import config
    from gankit.train import Trainer

    lab = Lab("pacgan_ring_gan")
    try:
        lab.start("a", {**lab.initial, "batch_size": 64, "steps": 3})
        lab.advance("a", "train", 3)
        (tmp_path / "a.yaml").write_text(lab.yaml("a"))
        cfg = config.load(str(tmp_path / "a.yaml"))
        assert cfg.train.updates == "simultaneous"
        trainer = Trainer.start(cfg, tmp_path / "run")
        trainer.fit()
        for name in ("generator", "discriminator"):
            mine, theirs = lab.run("a").exp.networks[name].state_dict(), trainer.exp.networks[name].state_dict()
            assert all(torch.equal(mine[k], theirs[k]) for k in theirs), name
        assert lab.run("a").d_steps == 3
    finally:
        lab.close()
