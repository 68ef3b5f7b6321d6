"""Loading a file never runs code.

A crafted checkpoint whose pickle calls ``os.mkdir`` when unpickled (a stand-in for any code)
is refused with a one-line message by every path that reads checkpoints (the engine's
``load_checkpoint``, ``sckd predict``, ``sckd train --resume``, auto-resume of a run folder,
the SCKD teacher) and the payload never runs; the same file *does* run it under a plain
``torch.load(weights_only=False)``, so the test would notice a loader that unpickles. YAML
from configs, ``--set`` values and checkpoints is read with ``safe_load``. A static scan of
``src/sckd`` finds no ``eval``/``exec``, unsafe YAML or pickle loading.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest
import torch
from helpers.vod_tree import make_vod_tree

import sckd
from sckd.cli import main
from sckd.engine import checkpoint as ck
from sckd.errors import SckdError

TINY = """
base: [experiments/base_train.yaml, datasets/vod.yaml, models/head_vod.yaml]
name: safety
dataset: {point_cloud_range: [0.0, -12.8, -3.0, 25.6, 12.8, 2.0]}
model:
  name: safety
  encoders: {radar: {type: pillar, input: radar, point_features: [x, y, z], voxel_size: [0.64, 0.64, 5.0],
                     pillar: {num_filters: [4]}}}
  fusion: {type: none}
  backbone_2d: {layer_nums: [1, 1], layer_strides: [1, 2], num_filters: [8, 16],
                upsample_strides: [1, 2], num_upsample_filters: [8, 8]}
train: {epochs: 1, batch_size: 2, workers: 0, val_every: 0, progress: false}
"""
STUDENT = TINY.replace("name: safety", "name: safety_student", 1) + """
distill:
  teacher: {checkpoint: ""}
"""


class Payload:
    """Unpickling this calls ``os.mkdir(marker)``: visible proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.fixture
def world(tmp_path):
    tree = make_vod_tree(tmp_path / "data", n_frames=4, splits={"train": [0, 1], "val": [2, 3]})
    (tmp_path / "tiny.yaml").write_text(TINY)
    (tmp_path / "student.yaml").write_text(STUDENT)
    return tmp_path, tree.root


def _crafted(tmp_path: Path, fmt: str) -> tuple[Path, Path]:
    """(checkpoint file, marker) for a zip (torch.save) or a legacy-format (pre-1.6 torch.save)
    checkpoint that looks like an sckd checkpoint and carries the payload."""
    marker = tmp_path / f"pwned_{fmt}"
    data = {"format": ck.FORMAT, "model": {"w": torch.zeros(2)}, "config": "", "extra": Payload(marker)}
    path = tmp_path / f"evil_{fmt}.pt"
    torch.save(data, path, _use_new_zipfile_serialization=fmt == "zip")
    return path, marker


def refusal(path: Path) -> str:
    return (f"{path}: not a readable checkpoint (it holds pickled Python objects, e.g. posix.mkdir, which "
            "could run code when loaded; sckd loads only tensors and plain data)")


def _one_error_line(capsys, rc: int) -> str:
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_the_crafted_file_is_live(tmp_path, fmt):
    """Guard: an unsafe load of the crafted file does run the payload."""
    path, marker = _crafted(tmp_path, fmt)
    torch.load(path, weights_only=False)
    assert marker.is_dir()


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_load_checkpoint_refuses_the_payload(tmp_path, fmt):
    path, marker = _crafted(tmp_path, fmt)
    with pytest.raises(SckdError) as e:
        ck.load_checkpoint(path)
    assert str(e.value) == refusal(path)
    assert not marker.exists()


def _commands(tmp, root, evil):
    run = tmp / "run"
    return {
        "predict": ["predict", evil, "--data", root, "--out", tmp / "preds"],
        "resume": ["train", tmp / "tiny.yaml", "--data", root, "--out", run, "--resume", evil],
        "teacher": ["train", tmp / "student.yaml", "--data", root, "--out", run,
                    "--set", f"distill.teacher.checkpoint={evil}"],
    }


@pytest.mark.parametrize("command", ["predict", "resume", "teacher", "auto-resume"])
@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_every_command_refuses_the_payload(world, capsys, command, fmt):
    tmp, root = world
    evil, marker = _crafted(tmp, fmt)
    if command == "auto-resume":  # the newest periodic checkpoint of the run folder
        (tmp / "run" / "checkpoints").mkdir(parents=True)
        target = tmp / "run" / "checkpoints" / "step_00000003.pt"
        evil.rename(target)
        evil = target
        argv = ["train", tmp / "tiny.yaml", "--data", root, "--out", tmp / "run"]
    else:
        argv = _commands(tmp, root, evil)[command]
    line = _one_error_line(capsys, main([str(a) for a in argv]))
    assert line == f"error: {refusal(evil)}"
    assert not marker.exists()


def test_yaml_tags_in_a_checkpoint_config_are_not_run(world, capsys):
    """A weights-only-clean checkpoint whose stored config carries a python tag."""
    tmp, root = world
    marker = tmp / "pwned_yaml"
    p = tmp / "tagged.pt"
    # the first checkpoint format stored the config as YAML text
    ck.atomic_torch_save({"format": ck.LEGACY_FORMAT, "model": {}, "signature": "x",
                          "config": f"model: !!python/object/apply:os.mkdir ['{marker}']\n"}, p)
    line = _one_error_line(capsys, main([str(a) for a in ["predict", p, "--data", root, "--out", tmp / "o"]]))
    assert line == f"error: {p}: stored config is not valid YAML"
    line = _one_error_line(capsys, main([str(a) for a in [
        "train", tmp / "student.yaml", "--data", root, "--out", tmp / "run", "--set",
        f"distill.teacher.checkpoint={p}"]]))
    assert line == f"error: {p}: stored config is not valid YAML"
    assert not marker.exists()


def test_yaml_tags_in_set_values_are_plain_strings(world, capsys):
    tmp, root = world
    marker = tmp / "pwned_set"
    argv = ["train", tmp / "tiny.yaml", "--data", root, "--out", tmp / "run",
            "--set", f"train.seed=!!python/object/apply:os.mkdir ['{marker}']"]
    line = _one_error_line(capsys, main([str(a) for a in argv]))
    tag = f"!!python/object/apply:os.mkdir ['{marker}']"
    assert line == f"error: config key 'train.seed': expected an integer, got {tag!r}"
    assert not marker.exists()


# ------------------------------------------------------------------ static scan of the sources

_UNSAFE_YAML = {"load", "load_all", "unsafe_load", "unsafe_load_all", "full_load", "full_load_all",
                "Loader", "UnsafeLoader", "FullLoader"}
_PICKLERS = {"pickle", "cPickle", "_pickle", "dill", "marshal", "shelve", "joblib", "cloudpickle"}


def unsafe_calls(source: str, filename: str = "<src>") -> list[str]:
    """Every way in ``source`` to run code from data: builtin eval/exec/compile/__import__,
    unsafe YAML loading, pickle-family imports, torch.load without weights_only=True,
    np.load(allow_pickle=True), os.system/os.popen and subprocess shells."""
    found = []
    tree = ast.parse(source, filename)
    for node in ast.walk(tree):
        where = f"{filename}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if any(m.split(".")[0] in _PICKLERS for m in mods):
                found.append(f"{where}: imports {mods}")
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            base, attr = node.value.id, node.attr
            if base == "yaml" and attr in _UNSAFE_YAML:
                found.append(f"{where}: yaml.{attr}")
            if base == "os" and attr in ("system", "popen"):
                found.append(f"{where}: os.{attr}")
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        kw = {k.arg: k.value for k in node.keywords}
        if isinstance(f, ast.Name) and f.id in ("eval", "exec", "compile", "__import__"):
            found.append(f"{where}: {f.id}()")
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
            if f.value.id == "torch" and f.attr == "load":
                wo = kw.get("weights_only")
                if not (isinstance(wo, ast.Constant) and wo.value is True):
                    found.append(f"{where}: torch.load without weights_only=True")
            if f.value.id in ("np", "numpy") and f.attr == "load":
                ap = kw.get("allow_pickle")
                if ap is not None and not (isinstance(ap, ast.Constant) and ap.value is False):
                    found.append(f"{where}: np.load(allow_pickle=...)")
        shell = kw.get("shell")
        if shell is not None and not (isinstance(shell, ast.Constant) and shell.value is False):
            found.append(f"{where}: shell=")
    return found


def test_the_scanner_finds_planted_problems():
    planted = """
import pickle
import yaml, torch, numpy as np, os, subprocess
cfg = yaml.load(text, Loader=yaml.Loader)
eval(user_string)
exec(code)
torch.load(path)
torch.load(path, weights_only=False)
np.load(p, allow_pickle=True)
os.system(cmd)
subprocess.run(cmd, shell=True)
"""
    hits = unsafe_calls(planted)
    assert sorted(int(h.split(":")[1]) for h in hits) == [2, 4, 4, 5, 6, 7, 8, 9, 10, 11], hits
    clean = """
import yaml, torch, numpy as np
model.eval()
cfg = yaml.safe_load(text)
torch.load(path, map_location="cpu", weights_only=True)
np.load(p)
"""
    assert unsafe_calls(clean) == []


def test_sources_have_no_unsafe_loading():
    src = Path(sckd.__file__).resolve().parent
    files = sorted(src.rglob("*.py"))
    assert len(files) > 50
    problems = [hit for f in files for hit in unsafe_calls(f.read_text(), str(f.relative_to(src.parent)))]
    assert problems == []
