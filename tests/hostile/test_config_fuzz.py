"""The config loader on random YAML documents, keys, values and --set overrides: a Config or one clear line."""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import yaml
from hypothesis import given
from hypothesis import strategies as st

from prunekit import config
from prunekit.common.errors import UserError
from prunekit.pruning.methods import METHODS
from tests.hostile.harness import MAX_SECONDS, check_memory, cli, count, fixed, one_line

SECTIONS = {f.name: f.type for f in dataclasses.fields(config.Config)}
KEYS = [f.name for f in dataclasses.fields(config.Config)] + [
    f"{section}.{f.name}"
    for section, cls in (
        ("model", config.ModelConfig),
        ("data", config.DataConfig),
        ("train", config.TrainConfig),
        ("prune", config.PruneConfig),
    )
    for f in dataclasses.fields(cls)
]

numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([0, 1, -1, 2**31, 2**63, 10**12, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 0.5, 0.999999, 1.0, 1e-300, 1e308]),
)
scalars = st.one_of(
    st.none(), st.booleans(), numbers, st.text(max_size=30), st.sampled_from(["../x", "/abs", "", "a/b"])
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=20,
)


@st.composite
def plausible_configs(draw: st.DrawFn) -> dict:
    """Mostly real keys (so validation goes deep), some random ones, values of any type and size."""
    out: dict = {}
    for key in draw(st.lists(st.sampled_from(KEYS), max_size=8, unique=True)):
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            if not isinstance(node.get(p), dict):
                node[p] = {}
            node = node[p]
        node[leaf] = draw(values)
    if draw(st.booleans()):
        out[draw(st.text(max_size=8))] = draw(values)
    return out


def _load(path: Path, overrides: list[str]) -> None:
    start = time.process_time()
    try:
        cfg = config.load(path, overrides)
    except UserError as exc:
        one_line(str(exc))
    else:
        _check_valid(cfg)
    assert time.process_time() - start < MAX_SECONDS
    check_memory(path)


def _check_valid(cfg: config.Config) -> None:
    """A config that loads is finite everywhere and plans a bounded number of rounds, quickly."""
    flat = [cfg.to_dict()]
    while flat:
        v = flat.pop()
        if isinstance(v, dict):
            flat.extend(v.values())
        elif isinstance(v, list):
            flat.extend(v)
        elif isinstance(v, float):
            assert math.isfinite(v)
    try:
        plans = METHODS.get(cfg.prune.method)(cfg, {"a.weight": 1000, "b.weight": 100})
    except UserError as exc:
        one_line(str(exc))
    else:
        assert len(plans) <= max(config.MAX_ROUNDS, config.MAX_LIST) + 1


@fixed(120)
@given(doc=plausible_configs())
def test_random_configs_load_or_fail_in_one_line(doc: dict, tmp_path_factory) -> None:
    count("config documents")
    path = tmp_path_factory.mktemp("cfg") / "c.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    _load(path, [])


@fixed(100)
@given(text=st.one_of(st.text(max_size=300), st.binary(max_size=300).map(lambda b: b.decode("latin-1"))))
def test_random_text_as_config(text: str, tmp_path_factory) -> None:
    count("config texts")
    path = tmp_path_factory.mktemp("cfg") / "c.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass") if text.isascii() else text.encode("latin-1", "replace"))
    _load(path, [])


@fixed(120)
@given(
    overrides=st.lists(
        st.tuples(
            st.one_of(st.sampled_from(KEYS), st.text(max_size=12)),
            st.one_of(values.map(yaml.safe_dump), st.text(max_size=20)),
        ).map(lambda kv: f"{kv[0]}={kv[1]}"),
        max_size=4,
    )
)
def test_random_overrides(overrides: list[str], tmp_path_factory) -> None:
    count("--set overrides")
    path = tmp_path_factory.mktemp("cfg") / "c.yaml"
    path.write_text("name: fuzz\n")
    _load(path, overrides)


@fixed(25)
@given(doc=plausible_configs())
def test_invalid_configs_through_the_cli(doc: dict, tmp_path_factory) -> None:
    """Configs that do not load, through `prunekit run`: exit 2, one line, nothing computed."""
    root = tmp_path_factory.mktemp("cli")
    path = root / "c.yaml"
    path.write_text(yaml.safe_dump(doc))
    try:
        config.load(path)
        return  # a valid config would train: that is not this test's business
    except UserError:
        pass
    count("invalid configs via CLI")
    rc, _ = cli(["run", path, "--out", root / "run"])
    assert rc == 2 and not (root / "run").exists()
