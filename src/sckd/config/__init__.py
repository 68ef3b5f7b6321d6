"""YAML configs with inheritance (``base:``), ``--set a.b=c`` overrides and typed validation."""

from sckd.config.loader import (CONFIG_ROOT, apply_overrides, check_override_sections, load_yaml_tree,
                               resolve_config_path)
from sckd.config.schema import from_dict, to_dict

__all__ = [
    "CONFIG_ROOT",
    "apply_overrides",
    "check_override_sections",
    "from_dict",
    "load_yaml_tree",
    "resolve_config_path",
    "to_dict",
]
