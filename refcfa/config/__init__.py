"""Safe YAML configs with `_base_` inheritance, dotted overrides and a typed schema."""

from refcfa.config.loader import (
    apply_overrides,
    config_digest,
    config_from_dict,
    deep_merge,
    load_config,
    load_yaml_tree,
    resolve_config_path,
    resources_dir,
    save_config,
    validate,
)
from refcfa.config.schema import CONFIG_VERSION, Config

__all__ = [
    "CONFIG_VERSION",
    "Config",
    "apply_overrides",
    "config_digest",
    "config_from_dict",
    "deep_merge",
    "load_config",
    "load_yaml_tree",
    "resolve_config_path",
    "resources_dir",
    "save_config",
    "validate",
]
