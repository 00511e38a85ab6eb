"""Config loading: `_base_` inheritance, overrides, validation, and the shipped configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from refcfa.config import (
    config_digest,
    deep_merge,
    load_config,
    resources_dir,
    save_config,
)
from refcfa.errors import ConfigError

CONFIGS = resources_dir() / "configs"


def write(path: Path, data: dict | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def test_base_chain_is_merged_in_order_relative_to_each_file(tmp_path):
    write(tmp_path / "base" / "a.yaml", {"seed": 1, "train": {"lr": 0.1, "batch_size": 2}})
    write(tmp_path / "base" / "b.yaml", {"_base_": "a.yaml", "train": {"batch_size": 4}})
    write(tmp_path / "base" / "c.yaml", {"field": {"K": 5}})
    cfg_path = write(tmp_path / "exp" / "x.yaml",
                     {"_base_": ["../base/b.yaml", "../base/c.yaml"], "seed": 7})
    cfg = load_config(cfg_path)
    assert cfg.seed == 7  # the file wins over its bases
    assert cfg.train.lr == 0.1  # from a.yaml through b.yaml
    assert cfg.train.batch_size == 4  # b.yaml overrides a.yaml
    assert cfg.field.K == 5  # second base


def test_deep_merge_replaces_lists_and_merges_mappings():
    out = deep_merge({"a": {"x": 1, "y": [1, 2]}, "b": 1}, {"a": {"y": [3]}, "c": 2})
    assert out == {"a": {"x": 1, "y": [3]}, "b": 1, "c": 2}


def test_dotted_overrides_are_parsed_as_yaml(tmp_path):
    p = write(tmp_path / "c.yaml", {"name": "t"})
    cfg = load_config(p, ["train.max_steps=12", "cfa.coral=false", "model.block_out_channels=[16, 32]",
                          "model.attention_levels=[false, false]", "source.root=/x/y"])
    assert cfg.train.max_steps == 12
    assert cfg.cfa.coral is False
    assert cfg.model.block_out_channels == [16, 32]
    assert cfg.source.root == "/x/y"


def test_unknown_key_names_the_key_and_the_file(tmp_path):
    p = write(tmp_path / "bad.yaml", {"train": {"max_stpes": 3}})
    with pytest.raises(ConfigError, match=r"unknown config key `train.max_stpes` in .*bad.yaml.*max_steps"):
        load_config(p)


def test_unknown_override_key_is_an_error(tmp_path):
    p = write(tmp_path / "c.yaml", {})
    with pytest.raises(ConfigError, match=r"unknown config key `model.foo`"):
        load_config(p, ["model.foo=1"])


def test_wrong_type_names_the_key_and_expected_type(tmp_path):
    p = write(tmp_path / "bad.yaml", {"train": {"batch_size": "sixteen"}})
    with pytest.raises(ConfigError, match=r"`train.batch_size` in .*bad.yaml must be int, got 'sixteen'"):
        load_config(p)
    p2 = write(tmp_path / "bad2.yaml", {"cfa": {"coral": 1}})
    with pytest.raises(ConfigError, match=r"`cfa.coral`.*must be bool"):
        load_config(p2)
    p3 = write(tmp_path / "bad3.yaml", {"source": {"format": "png"}})
    with pytest.raises(ConfigError, match=r"`source.format`.*one of 'auto', 'mvtec'"):
        load_config(p3)


def test_version_mismatch_is_refused(tmp_path):
    p = write(tmp_path / "v.yaml", {"version": 99})
    with pytest.raises(ConfigError, match=r"version.*99.*reads version 1"):
        load_config(p)


def test_missing_config_and_missing_base(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"config file not found: .*nope.yaml"):
        load_config(tmp_path / "nope.yaml")
    p = write(tmp_path / "c.yaml", {"_base_": "gone.yaml"})
    with pytest.raises(FileNotFoundError, match=r"`_base_` file not found: gone.yaml"):
        load_config(p)


def test_inheritance_cycle_is_detected(tmp_path):
    write(tmp_path / "a.yaml", {"_base_": "b.yaml"})
    write(tmp_path / "b.yaml", {"_base_": "a.yaml"})
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "a.yaml")


def test_yaml_is_loaded_safely(tmp_path):
    p = write(tmp_path / "evil.yaml", "seed: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)


def test_semantic_checks_name_the_key(tmp_path):
    p = write(tmp_path / "c.yaml", {"field": {"t0": 10, "K": 20}})
    with pytest.raises(ConfigError, match=r"`field.K`.*1..field.t0"):
        load_config(p)


def test_save_round_trip_and_digest(tmp_path):
    cfg = load_config(CONFIGS / "quick" / "quick.yaml", ["seed=3"])
    out = save_config(cfg, tmp_path / "saved.yaml")
    again = load_config(out)
    assert again.to_dict() == cfg.to_dict()
    assert config_digest(again) == config_digest(cfg)
    assert config_digest(load_config(out, ["seed=4"])) != config_digest(cfg)


SHIPPED = sorted(p for p in CONFIGS.rglob("*.yaml") if "base" not in p.parts)


@pytest.mark.parametrize("path", SHIPPED, ids=[str(p.relative_to(CONFIGS)) for p in SHIPPED])
def test_every_shipped_config_loads_with_the_six_data_keys(path):
    raw = yaml.safe_load(path.read_text())
    cfg = load_config(path)
    for side in ("source", "target"):
        dom = cfg.domain(side)
        assert dom.root and dom.format and dom.category
    if "experiments" in path.parts and "synthetic" not in path.parts:
        assert set(raw["source"]) >= {"root", "format", "category"}
        assert set(raw["target"]) >= {"root", "format", "category"}


def test_nine_tasks_have_a_config_per_side():
    tasks = {
        "mvtec": ("bottle", ["cable", "capsule", "hazelnut"]),
        "visa": ("candle", ["macaroni1", "macaroni2", "pcb2"]),
        "dagm": ("class2", ["class1", "class3", "class6"]),
    }
    for ds, (src, tgts) in tasks.items():
        assert load_config(CONFIGS / "experiments" / ds / f"source_{src}.yaml").stage == "source"
        for t in tgts:
            cfg = load_config(CONFIGS / "experiments" / ds / f"target_{t}.yaml")
            assert cfg.stage == "target"
            assert cfg.target.category.lower() == t
            assert cfg.source.category.lower() == src


def test_seed_style_paths_resolve_to_shipped_configs(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    cfg = load_config("configs/experiments/mvtec/source_bottle.yaml")
    assert cfg.experiment_dir().as_posix() == "output/MVTec_Source_Bottle_Train"
