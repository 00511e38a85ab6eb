"""Safe YAML configs with detectron2-style `_base_` inheritance and dotted overrides.

- `_base_` is a path or a list of paths, resolved relative to the file that names it; bases are
  merged in order, then the file itself on top (deep merge of mappings; lists and scalars replace).
- Overrides `a.b=1` are parsed with `yaml.safe_load` on the value (so `1`, `true`, `[1, 2]` work).
- Validation turns the merged mapping into `Config`; an unknown key or a wrong type is a
  `ConfigError` naming the dotted key and the file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from refcfa.config.schema import CONFIG_VERSION, Config
from refcfa.errors import ConfigError

BASE_KEY = "_base_"
_MAX_DEPTH = 16


def _read_yaml(path: Path) -> dict:
    if not path.exists():
        raise FileNotFoundError(f"config file not found: {path} (pass an existing YAML file to --config-file)")
    if not path.is_file():
        raise ConfigError(f"config path {path} is not a file: expected a YAML file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text: expected a YAML file") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level, got {type(data).__name__}")
    return data


def deep_merge(base: Mapping, top: Mapping) -> dict:
    """Merge `top` into a copy of `base`: mappings recursively, everything else replaced."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def load_yaml_tree(path: str | Path, _depth: int = 0, _seen: tuple = ()) -> dict:
    """Load `path` with its `_base_` chain merged in; returns a plain dict."""
    path = Path(path).resolve()
    if path in _seen or _depth > _MAX_DEPTH:
        chain = " -> ".join(str(p) for p in (*_seen, path))
        raise ConfigError(f"config inheritance cycle or depth > {_MAX_DEPTH}: {chain}")
    data = _read_yaml(path)
    bases = data.pop(BASE_KEY, None)
    if bases is None:
        return data
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"{path}: `_base_` must be a path or a list of paths, got {bases!r}")
    merged: dict = {}
    for base in bases:
        base_path = (path.parent / base).resolve()
        if not base_path.exists():
            raise FileNotFoundError(f"{path}: `_base_` file not found: {base} (resolved to {base_path})")
        merged = deep_merge(merged, load_yaml_tree(base_path, _depth + 1, (*_seen, path)))
    return deep_merge(merged, data)


def apply_overrides(data: dict, overrides: Sequence[str]) -> dict:
    """Apply `a.b=value` overrides (value parsed as YAML) to a copy of `data`."""
    out = json.loads(json.dumps(data, default=str)) if data else {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.subkey=value (e.g. train.max_steps=100)")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"override {item!r} has an empty key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
            node = child
        node[parts[-1]] = value
    return out


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if get_origin(tp) in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _check_value(value: Any, tp: Any, key: str, where: str) -> Any:
    origin = get_origin(tp)
    if origin is Literal:
        if value in get_args(tp):
            return value
    elif origin in (Union, types.UnionType):
        for arg in get_args(tp):
            try:
                return _check_value(value, arg, key, where)
            except ConfigError:
                continue
    elif tp is type(None):
        if value is None:
            return None
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is list or origin is list:
        if isinstance(value, list):
            return list(value)
    elif tp is dict or origin is dict:
        if isinstance(value, dict):
            return dict(value)
    elif dataclasses.is_dataclass(tp):
        if isinstance(value, dict):
            return _build(tp, value, key, where)
    else:  # pragma: no cover - schema uses only the types above
        raise TypeError(f"unsupported schema type {tp!r} for {key}")
    raise ConfigError(
        f"config key `{key}` in {where} must be {_type_name(tp)}, got {value!r} ({type(value).__name__})"
    )


def _build(cls: type, data: Mapping, prefix: str, where: str):
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if key not in names or key == "source_file":
            known = ", ".join(sorted(n for n in names if n != "source_file"))
            raise ConfigError(f"unknown config key `{dotted}` in {where}; known keys here: {known}")
        kwargs[key] = _check_value(value, hints[key], dotted, where)
    return cls(**kwargs)


def validate(data: Mapping, where: str = "<config>") -> Config:
    """Turn a merged mapping into a `Config`, checking every key and type."""
    version = data.get("version", CONFIG_VERSION)
    if version != CONFIG_VERSION:
        raise ConfigError(
            f"config `version` in {where} is {version!r}; this refcfa reads version {CONFIG_VERSION}"
        )
    cfg = _build(Config, data, "", where)
    _check_semantics(cfg, where)
    cfg.source_file = where
    return cfg


def _check_semantics(cfg: Config, where: str) -> None:
    def need(cond: bool, key: str, what: str) -> None:
        if not cond:
            raise ConfigError(f"config key `{key}` in {where}: {what}")

    need(cfg.data.image_size >= 8, "data.image_size", "must be ≥ 8")
    need(cfg.data.channels in (None, 1, 3), "data.channels", "must be 1, 3 or null (follow the data)")
    need(len(cfg.model.block_out_channels) == len(cfg.model.attention_levels), "model.attention_levels",
         "must have one entry per model.block_out_channels entry")
    need(all(c % cfg.model.norm_num_groups == 0 for c in cfg.model.block_out_channels),
         "model.block_out_channels", f"each must be divisible by model.norm_num_groups={cfg.model.norm_num_groups}")
    need(cfg.data.image_size % (2 ** (len(cfg.model.block_out_channels) - 1)) == 0, "data.image_size",
         f"must be divisible by 2^{len(cfg.model.block_out_channels) - 1} for the UNet's down-sampling")
    need(0 < cfg.field.t0 < cfg.diffusion.num_train_timesteps, "field.t0",
         f"must be in 1..{cfg.diffusion.num_train_timesteps - 1}")
    need(1 <= cfg.field.K <= cfg.field.t0, "field.K", "must be in 1..field.t0")
    need(cfg.field.patch % 2 == 1 and cfg.field.patch >= 1, "field.patch", "must be an odd number ≥ 1")
    need(cfg.train.batch_size >= 1, "train.batch_size", "must be ≥ 1")
    need(cfg.train.max_steps >= 1, "train.max_steps", "must be ≥ 1")
    need(cfg.transformer.d_model % cfg.transformer.heads == 0, "transformer.d_model",
         "must be divisible by transformer.heads")
    need(0.0 <= cfg.train.ema_decay < 1.0, "train.ema_decay", "must be in [0, 1)")


def resources_dir() -> Path:
    """The shipped `resources/` folder (configs, icons)."""
    return Path(__file__).resolve().parents[2] / "resources"


def resolve_config_path(path: str | Path) -> Path:
    """`path` as given, else the shipped config it names.

    The seed's commands say `configs/experiments/mvtec/source_bottle.yaml`; ours live in
    `resources/configs/`, so `configs/...` and `experiments/...` also resolve there.
    """
    path = Path(path)
    if path.exists():
        return path
    parts = path.parts
    if parts and parts[0] == "configs":
        parts = parts[1:]
    shipped = resources_dir() / "configs" / Path(*parts) if parts else None
    if shipped is not None and shipped.exists():
        return shipped
    raise FileNotFoundError(
        f"config file not found: {path} (pass an existing YAML file; shipped configs are under "
        f"{resources_dir() / 'configs'}, e.g. experiments/synthetic/demo.yaml)"
    )


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> Config:
    """Load a YAML config with its `_base_` chain and dotted overrides into a validated `Config`.

    Relative data roots (`source.root`, `target.root`) and `output_dir` stay as written: they are
    relative to the working directory, as in the seed's commands.
    """
    path = resolve_config_path(path)
    data = apply_overrides(load_yaml_tree(path), overrides)
    where = str(path) + (f" (with overrides {' '.join(overrides)})" if overrides else "")
    return validate(data, where)


def config_from_dict(data: Mapping, where: str = "<dict>") -> Config:
    return validate(data, where)


def save_config(cfg: Config, path: str | Path) -> Path:
    """Write `cfg` as a self-contained YAML file (no `_base_`), loadable by `load_config`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")
    tmp.replace(path)
    return path


def config_digest(cfg: Config, sections: Sequence[str] | None = None) -> str:
    """A stable sha256 of the config (or of the named sections), for cache keys."""
    data = cfg.to_dict()
    if sections is not None:
        data = {k: data[k] for k in sections}
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


__all__ = [
    "apply_overrides",
    "resolve_config_path",
    "resources_dir",
    "config_digest",
    "config_from_dict",
    "deep_merge",
    "load_config",
    "load_yaml_tree",
    "save_config",
    "validate",
]
