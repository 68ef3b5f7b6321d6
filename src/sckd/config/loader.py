"""Reading YAML config trees.

A config file may name one or more parents with ``base: path`` (or a list); parents are
merged first, in order, and the child's keys win. Dicts merge key by key; every other value
(lists included) is replaced whole. Paths resolve relative to the including file, then to
the shipped ``configs/`` folder, so ``base: datasets/vod.yaml`` works from anywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sckd.errors import SckdError

CONFIG_ROOT = Path(__file__).resolve().parent.parent / "configs"
MAX_BASE_DEPTH = 64
"""Longest ``base:`` chain read (the shipped configs use 4); deeper would exhaust the stack."""


def resolve_config_path(name: str | Path, relative_to: Path | None = None) -> Path:
    """Find a config by path, or by name inside the shipped ``configs/`` tree.

    ``vod`` finds ``configs/datasets/vod.yaml``; ``experiments/synth/student`` finds the yaml.
    """
    name = str(name)
    candidates: list[Path] = []
    for root in ([relative_to] if relative_to else []) + [Path.cwd(), CONFIG_ROOT, CONFIG_ROOT / "datasets"]:
        for suffix in ("", ".yaml", ".yml"):
            candidates.append(Path(root) / f"{name}{suffix}")
    for c in candidates:
        if c.is_file():
            return c.resolve()
    raise SckdError(f"{name}: config file not found (looked next to the including file, in the "
                    f"current folder and in {CONFIG_ROOT})")


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as e:
        raise SckdError(f"{path}: cannot read config ({e.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise SckdError(f"{path}: invalid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SckdError(f"{path}: a config must be a mapping of sections, got {type(data).__name__}")
    return data


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def load_yaml_tree(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Load a config file with all its ``base:`` parents merged in."""
    p = resolve_config_path(path) if not Path(path).is_file() else Path(path).resolve()
    if len(_seen) >= MAX_BASE_DEPTH:
        raise SckdError(f"{_seen[0]}: config inheritance deeper than {MAX_BASE_DEPTH} levels of 'base:' "
                        f"(reached {p}); flatten the chain")
    if p in _seen:
        raise SckdError(f"{p}: config inheritance cycle ({' -> '.join(str(s) for s in _seen)})")
    data = _read_yaml(p)
    bases = data.pop("base", None)
    if bases is None:
        return data
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise SckdError(f"{p}: 'base' must be a path or a list of paths")
    merged: dict[str, Any] = {}
    for b in bases:
        parent = resolve_config_path(b, relative_to=p.parent)
        merged = deep_merge(merged, load_yaml_tree(parent, _seen + (p,)))
    return deep_merge(merged, data)


def check_override_sections(overrides: list[str] | tuple[str, ...], sections: tuple[str, ...]) -> None:
    """Refuse ``--set`` keys outside the sections a command reads: a typo such as
    ``datset.root=...`` would otherwise be ignored without a word."""
    for item in overrides:
        head = item.split("=", 1)[0].strip().split(".")[0]
        if head not in sections:
            raise SckdError(f"--set {item}: unknown section '{head}' (this command reads "
                            f"{', '.join(sections)})")


def apply_overrides(cfg: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` strings (value parsed as YAML) to a raw config dict.

    Creating a new leaf is allowed here (schema validation rejects unknown keys later, naming
    them); walking through a non-mapping is an error naming the override.
    """
    out = deep_merge({}, cfg)
    for item in overrides:
        if "=" not in item:
            raise SckdError(f"--set {item}: expected KEY=VALUE, e.g. train.epochs=10")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise SckdError(f"--set {item}: empty key segment in '{key}'")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = out
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            elif not isinstance(nxt, dict):
                raise SckdError(f"--set {item}: '{'.'.join(parts[: i + 1])}' is a value, not a section")
            else:
                nxt = node[part] = dict(nxt)
            node = nxt
        node[parts[-1]] = value
    return out
