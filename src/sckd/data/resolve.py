"""The one place a dataset argument is interpreted: a folder, a shipped dataset name, or a
config file -> a typed :class:`DatasetConfig`.

A bare folder is recognised by the ``markers`` of the shipped dataset configs
(``configs/datasets/*.yaml``): Astyx by its ``dataset.json``, a synthetic world by the
``synth_config.yaml`` that ``sckd synth`` writes, View-of-Delft by its sensor trees
(``radar_5frames/training``, ...), TJ4DRadSet by ``training/velodyne``. A file marker names a
dataset more precisely than a folder one (a synthetic world also has VoD's trees), so it wins.

:func:`dataset_for_model` reads one dataset for a model trained on another (cross-dataset use).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from sckd.config import (
    CONFIG_ROOT,
    apply_overrides,
    check_override_sections,
    from_dict,
    load_yaml_tree,
    resolve_config_path,
    to_dict,
)
from sckd.data.config import DatasetConfig
from sckd.errors import SckdError

DATASETS_DIR = CONFIG_ROOT / "datasets"


def shipped_datasets() -> dict[str, DatasetConfig]:
    """Name -> config of every ``configs/datasets/*.yaml``."""
    out = {}
    for p in sorted(DATASETS_DIR.glob("*.yaml")):
        cfg = from_dict(DatasetConfig, load_yaml_tree(p)["dataset"], "dataset")
        out[p.stem] = cfg
    return out


def identify_folder(folder: Path) -> str:
    """The shipped dataset a folder is, by its markers; a one-line error when none (or, among
    equally precise markers, several) match."""
    found: dict[str, bool] = {}  # name -> matched through a file marker
    shipped = shipped_datasets()
    for name, cfg in shipped.items():
        hits = [folder / m for m in cfg.markers if (folder / m).exists()]
        if hits:
            found[name] = any(h.is_file() for h in hits)
    best = [n for n, by_file in found.items() if by_file] or list(found)
    if len(best) == 1:
        return best[0]
    if not best:
        looked = "; ".join(f"{n}: {' or '.join(c.markers)}" for n, c in shipped.items() if c.markers)
        raise SckdError(f"{folder}: not a dataset folder sckd knows (looked for {looked}); "
                        "pass a dataset config (YAML with a dataset: section and its root) instead")
    raise SckdError(f"{folder}: looks like several datasets ({', '.join(best)}); pass --dataset or a config")


def resolve_dataset_tree(arg: str | Path, *, root: str | Path | None = None,
                         overrides: list[str] | tuple[str, ...] = (), base: DatasetConfig | None = None,
                         sections: tuple[str, ...] = ("dataset",)) -> tuple[DatasetConfig, dict[str, Any]]:
    """:func:`resolve_dataset` and the whole config tree it came from (for other sections a
    command reads from the same file, e.g. ``eval``; ``sections`` are those ``overrides`` may set)."""
    p = Path(arg).expanduser()
    if p.is_dir():
        folder = p.resolve()
        root = folder if root is None else root
        if base is None:
            spec = DATASETS_DIR / f"{identify_folder(folder)}.yaml"
        elif any((folder / m).exists() for m in base.markers):
            spec, tree = folder, {"dataset": to_dict(base)}
        else:
            name = identify_folder(folder)
            shipped = shipped_datasets()[name]
            if shipped.layout != base.layout:
                raise SckdError(f"{folder}: holds the '{name}' dataset ({shipped.layout} layout) but the model's dataset "
                                f"'{base.name}' has the {base.layout} layout; pass a dataset config")
            spec, tree = folder, {"dataset": to_dict(base)}
    elif p.is_file():
        spec = p
    else:
        try:
            spec = resolve_config_path(str(arg))  # a shipped name or a config path
        except SckdError:
            if p.suffix in (".yaml", ".yml"):
                raise
            if "/" in str(arg) or "\\" in str(arg):
                raise SckdError(f"{p}: dataset root does not exist (nor is it a config file)") from None
            raise SckdError(f"{arg}: not a dataset folder, a shipped dataset ({', '.join(shipped_datasets())}) "
                            "or a config file") from None
    if base is None or not p.is_dir():
        tree = load_yaml_tree(spec)
    tree = apply_overrides(tree, list(overrides))
    check_override_sections(overrides, sections)
    if "dataset" not in tree:
        raise SckdError(f"{spec}: config has no 'dataset' section")
    cfg = from_dict(DatasetConfig, tree["dataset"], "dataset")
    if root is not None:
        cfg.root = str(Path(root).expanduser())
    return cfg, tree

def resolve_dataset(arg: str | Path, *, root: str | Path | None = None,
                    overrides: list[str] | tuple[str, ...] = (), base: DatasetConfig | None = None) -> DatasetConfig:
    """A dataset argument -> its typed config.

    - a folder: the shipped config its markers name, rooted there; with ``base`` (the config a
      model was trained with) ``base`` rooted there instead, after checking the layouts agree;
    - a shipped dataset name (``vod``, ``astyx``, ``synth``, ``tj4d``) or a config path: that
      file's ``dataset:`` section.

    ``root`` replaces ``dataset.root``; ``overrides`` are ``--set`` strings (``dataset.x=y``).
    """
    return resolve_dataset_tree(arg, root=root, overrides=overrides, base=base)[0]


def dataset_for_model(arg: str | Path, model: DatasetConfig, reads: dict[str, list[str]], *,
                      overrides: list[str] | tuple[str, ...] = ()) -> tuple[DatasetConfig, dict[str, Any] | None]:
    """The dataset at ``arg`` as read by a model trained on ``model`` (its stored dataset config).

    The model's own dataset (a folder with its markers or of its name, a config of its name) is
    :func:`resolve_dataset` with ``base=model``, and the tree is None. Another dataset (Astyx for
    a model of the synthetic world, ...) keeps its files, layout, splits and labels but takes the
    model's classes and range, and its points arrive in the model's column layout by name
    (``stored``): every feature the model ``reads`` (per sensor) must be in the files, the others
    of its layout read as 0. The target's classes the model does not predict stay in its labels as
    non-evaluated objects. The target's config tree comes back too (its ``eval`` section).
    """
    p = Path(arg).expanduser()
    own = [o for o in overrides if o.startswith("dataset.")]  # eval.* ones are for another set's eval
    if p.is_dir() and any((p / m).exists() for m in model.markers):
        return resolve_dataset(p, overrides=own, base=model), None
    target, tree = resolve_dataset_tree(arg, overrides=overrides, sections=("dataset", "eval"))
    if target.name == model.name:
        return (resolve_dataset(p, overrides=own, base=model) if p.is_dir() else target), None
    sensors = {}
    for name in ("radar", "lidar"):
        mine, theirs = getattr(model, name), getattr(target, name)
        need = reads.get(name, [])
        if need and theirs is None:
            raise SckdError(f"{arg}: the model reads {name} points but dataset '{target.name}' has none")
        if mine is None or theirs is None:  # not read: keep the model's entry (its signature names it)
            sensors[name] = mine
            continue
        missing = [f for f in need if f not in theirs.file_features]
        if missing:
            raise SckdError(f"{arg}: the model (trained on '{model.name}') reads {name} features {missing} that "
                            f"'{target.name}' does not have ({' '.join(theirs.file_features)})")
        sensors[name] = replace(theirs, features=list(mine.features), stored=list(theirs.file_features))
    others = [c for c in [*target.other_classes, *target.classes] if c not in model.classes]
    cfg = replace(target, classes=list(model.classes), other_classes=others,
                  point_cloud_range=list(model.point_cloud_range), **sensors)
    cfg.validate("dataset")
    return cfg, tree
