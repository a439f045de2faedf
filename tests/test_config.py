"""Config resolution: defaults, YAML by difference, overrides, and an error naming the key for each mistake."""
import pytest

from gankit import config
from gankit.errors import ConfigError


def test_defaults_resolve_every_parameter():
    cfg = config.load()
    assert cfg.data == {"name": "ring", "n_modes": 8, "radius": 1.0, "std": 0.01, "n": 100_000, "seed": 0,
                        "balanced": False}
    assert cfg.model.generator["width"] == 256 and cfg.loss == {"name": "ns"}
    assert cfg.regularizers == [{"name": "r1", "weight": 1.0, "every": 1, "precision": "fp32"}]
    assert cfg.optim.generator["betas"] == [0.5, 0.999]


def test_overrides_set_nested_values_and_list_items():
    cfg = config.load(None, ["train.steps=500", "train.seed=3", "train.batch_size=64", "train.n_critic=5",
                             "regularizers=[{name: r1, weight: 2}]", "regularizers.0.every=4", "loss=wgan"])
    assert (cfg.train.steps, cfg.train.seed, cfg.train.batch_size, cfg.train.n_critic) == (500, 3, 64, 5)
    assert cfg.regularizers == [{"name": "r1", "weight": 2.0, "every": 4, "precision": "fp32"}]
    assert cfg.loss == {"name": "wgan"}


def test_changing_a_component_name_drops_the_old_parameters():
    cfg = config.load(None, ["data=grid"])
    assert cfg.data["name"] == "grid" and "radius" not in cfg.data and cfg.data["std"] == 0.05


def test_yaml_states_only_differences(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("train:\n  steps: 7\nmodel:\n  discriminator:\n    spectral_norm: true\n")
    cfg = config.load(str(path))
    assert cfg.name == "exp" and cfg.train.steps == 7 and cfg.model.discriminator["spectral_norm"] is True
    assert cfg.train.batch_size == 256


def test_resolved_config_round_trips(tmp_path):
    cfg = config.load("ring_wgan_gp")
    path = tmp_path / "config.yaml"
    path.write_text(config.dump(cfg))
    assert config.load(base=config.read_yaml(path)) == cfg


@pytest.mark.parametrize("overrides,message", [
    (["train.stepz=5"], "unknown config key train.stepz"),
    (["bogus=1"], "unknown config key bogus"),
    (["train.steps=abc"], "train.steps must be an integer"),
    (["train.steps=1.5"], "train.steps must be an integer"),
    (["train.progress=3"], "train.progress must be true or false"),
    (["train.steps=0"], "train.steps must be >= 1"),
    (["train.n_critic=0"], "train.n_critic must be >= 1"),
    (["train.g_updates=0"], "train.g_updates must be >= 1"),
    (["train.batch_size=0"], "train.batch_size must be >= 1"),
    (["train.ema.decay=1.5"], "train.ema.decay must be in [0, 1)"),
    (["optim.generator.lr=-1e-4"], "optim.generator.lr must be > 0"),
    (["optim.discriminator.betas=[0.5]"], "optim.discriminator.betas"),
    (["optim.generator.name=adamw"], "unknown optimizer 'adamw' at optim.generator.name; choose one of: adam, rmsprop, sgd"),
    (["loss=nope"], "unknown loss 'nope' at loss.name; choose one of: "),  # the names: test_losses
    (["regularizers=[{name: r3}]"], "unknown regularizer 'r3' at regularizers.0.name; choose one of:"),
    (["regularizers=r1"], "regularizers must be a list"),
    (["model.generator.name=resnet"], "unknown model 'resnet' at model.generator.name; choose one of: "),
    (["model.generator.widht=3"], "unknown key model.generator.widht for model 'mlp'; valid keys:"),
    (["data=moons"], "unknown dataset 'moons' at data.name; choose one of: "),
    (["data.std=-1"], "data.std must be > 0"),
    (["optim.lr_decay=cosine"], "optim.lr_decay must be one of none, linear"),
    (["train.steps"], "must look like KEY=VALUE"),
])
def test_bad_values_name_the_key(overrides, message):
    with pytest.raises(ConfigError) as info:
        config.load(None, overrides)
    assert message in str(info.value)


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  steps: 5\n  batch_size: [1, 2\nloss: ns\n")
    with pytest.raises(ConfigError, match=r"malformed YAML in .*bad\.yaml line \d+"):
        config.load(str(path))


def test_yaml_is_loaded_safely(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        config.load(str(path))


def test_unknown_config_name_lists_shipped_ones():
    with pytest.raises(ConfigError, match="unknown config 'nope'.*ring_gan_r1"):
        config.load("nope")


def test_a_folder_named_like_a_shipped_config_does_not_hide_it(tmp_path, monkeypatch):
    """A run directory made by `--out ring_gan` in the working directory: `gankit train ring_gan` still trains
    the shipped config; a folder that names no shipped config is a one-line error."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ring_gan").mkdir()
    (tmp_path / "my_run").mkdir()
    assert config.load("ring_gan").name == "ring_gan"
    with pytest.raises(ConfigError, match="my_run is a folder"):
        config.load("my_run")


def test_every_shipped_config_resolves():
    names = config.shipped_configs()
    for study in ("gan", "gan_r1", "wgan", "wgan_gp", "sngan", "lsgan", "hinge", "dragan", "rlc"):
        assert f"ring_{study}" in names and f"grid_{study}" in names
    for name in names:
        config.load(name)


def test_an_override_into_a_default_list_edits_that_list():
    """regularizers.0.weight=0.1 on the default config (whose YAML states no regularizers) changes R1's weight."""
    cfg = config.load(None, ["regularizers.0.weight=0.1"])
    assert cfg.regularizers[0]["name"] == "r1" and cfg.regularizers[0]["weight"] == 0.1
    with pytest.raises(ConfigError, match="regularizers.3"):
        config.load(None, ["regularizers.3.weight=0.1"])
