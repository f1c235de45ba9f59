import pytest

from prunekit import config
from prunekit.common.errors import UserError


def test_defaults_fill_every_key_and_round_trip(tmp_path):
    cfg = config.load(None)
    path = tmp_path / "c.yaml"
    path.write_text(config.dump(cfg))
    assert config.differences(cfg, config.load(path)) == []
    unnamed = tmp_path / "lenet-seed.yaml"
    unnamed.write_text("seed: 3\n")
    assert config.load(unnamed).name == "lenet-seed"  # the file's stem names a run by default


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("prune.sparsty=0.5", "did you mean prune.sparsity"),
        ("prune.sparsity=1.5", "prune.sparsity: must be in [0, 1)"),
        ("prune.sparsity=[0.5, 1.0]", "prune.sparsity"),
        ("train.epochs=three", "train.epochs: expected an integer"),
        ("train.optimizer=rmsprop", "sgd | adam"),
        ("prune.rewind=epoch", "prune.rewind"),
        ("model=resnet", "model: expected a mapping"),
        ("nokey=1", "unknown config key nokey"),
        ("prune.rate=0", "prune.rate"),
        ("prune.control=shuffle", "prune.control"),
        ("device=tpu", "device"),
        ("justtext", "KEY=VALUE"),
    ],
)
def test_bad_values_name_the_key(override, fragment):
    with pytest.raises(UserError, match=None) as err:
        config.load(None, [override])
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_overrides_are_typed_and_lists_become_tuples():
    cfg = config.load(None, ["prune.sparsity=[0.5, 0.9]", "train.lr=1", "prune.layer_rate={fc3.weight: 0.1}"])
    assert cfg.prune.sparsities == (0.5, 0.9)
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)
    assert cfg.prune.layer_rate == {"fc3.weight": 0.1}


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(UserError, match="not found"):
        config.load(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {name: [\n")
    with pytest.raises(UserError, match="not valid YAML"):
        config.load(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(UserError, match="mapping"):
        config.load(listy)


def test_differences_names_changed_keys():
    a = config.load(None)
    b = a.replace(**{"prune.rate": 0.3, "seed": 4})
    assert config.differences(a, b) == ["prune.rate", "seed"]
