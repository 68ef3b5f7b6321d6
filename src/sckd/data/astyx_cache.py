"""An Astyx HiRes2019 folder converted once into the VoD layout the rest of sckd reads.

:func:`prepare_astyx` checks the cache against the source files (size and modification time of
each frame's four files) and converts only frames that are new or changed, under a file lock
(several processes of one ``torchrun`` may ask at once). The check costs a stat per source
file (23 ms for the 546 real frames, measured 2026-11-29). The manifest also records what was
written (size, modification time and CRC-32 of each cached file); a frame whose cached files
were since deleted, cut or edited is converted again (a stat per file; the CRC is read only when
the time differs, e.g. a copied cache). The cache holds::

    CACHE/radar/training/{velodyne,calib,label_2}/<id>   radar (levelled frame), KITTI labels
    CACHE/lidar/training/{velodyne,calib}/<id>           LiDAR moved into the same frame
    CACHE/radar/ImageSets/<split rule>/fold<k>/{train,val,unlabeled,all}.txt
    CACHE/manifest.json

Points and boxes are in the *levelled radar frame* (:func:`sckd.data.astyx.level_rotation`;
the radar frame itself with ``level: none``). Its calib files describe a virtual camera at the
radar looking along +x (``x_cam = -y, y_cam = -z, z_cam = x``, the real intrinsics ``K``), so
camera-frame IoU equals radar-frame IoU and ranges are ground distances from the radar; their
``P2_image`` / ``Tr_velo_to_image_cam`` keys name the real camera, through which the labels'
2D boxes were projected and predictions' 2D boxes are (2D AP, AOS, difficulty heights).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import zlib
from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm

from sckd.atomic import write_text_atomic
from sckd.config import resolve_config_path
from sckd.data import astyx
from sckd.data.calib import Calib, write_calib
from sckd.data.config import DatasetConfig
from sckd.data.labels import write_kitti_labels
from sckd.data.points import write_bin
from sckd.errors import SckdError

CONVERTER_VERSION = 3  # 2: label 2D boxes from the real camera (difficulty heights); 3: calib names it
RADAR_TREE, LIDAR_TREE = "radar", "lidar"
CAM_FROM_LEVEL = np.array([[0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=np.float64)
"""Levelled radar frame -> virtual camera (x right, y down, z forward)."""
log = logging.getLogger("sckd")


def cache_root(cfg: DatasetConfig) -> Path:
    """The cache folder of this root and these conversion settings."""
    root = Path(cfg.root).expanduser().resolve()
    base = Path(cfg.astyx.cache_dir or os.environ.get("SCKD_CACHE", "") or Path.home() / ".cache" / "sckd")
    key = json.dumps([CONVERTER_VERSION, str(root), cfg.astyx.level, cfg.radar.columns, cfg.radar.file_features,
                      None if cfg.lidar is None else cfg.lidar.columns], sort_keys=True)
    return base.expanduser() / "astyx" / hashlib.sha1(key.encode()).hexdigest()[:12]


def split_dir_name(cfg: DatasetConfig) -> str:
    a = cfg.astyx
    if a.split == "list":
        return f"list_{Path(a.split_list).stem}"
    return f"b{a.block_frames}_v{a.val_fraction:g}_u{a.unlabeled_fraction:g}_k{a.folds}_s{a.split_seed}"


def block_splits(frame_ids: list[str], block_frames: int, val_fraction: float, unlabeled_fraction: float,
                 folds: int, seed: int) -> list[dict[str, list[str]]]:
    """The split rule: frames in id order are cut into contiguous blocks of ``block_frames``;
    one permutation of the blocks (``seed``) is laid out in a ring, fold k takes the k-th slice of
    ``round(val_fraction * blocks)`` blocks as val, the next ``round(unlabeled_fraction *
    blocks)`` as unlabeled and the rest as train. Lists keep id order."""
    ids = sorted(frame_ids)
    blocks = [ids[i:i + block_frames] for i in range(0, len(ids), block_frames)]
    nb = len(blocks)
    n_val = max(1, round(val_fraction * nb))
    n_unl = round(unlabeled_fraction * nb)
    if n_val + n_unl >= nb:
        raise SckdError(f"dataset.astyx: {len(ids)} frames make {nb} blocks of {block_frames}, too few for "
                        f"{n_val} val and {n_unl} unlabeled blocks and a train split")
    order = np.random.default_rng(seed).permutation(nb)
    out = []
    for k in range(folds):
        ring = [int(order[(k * n_val + j) % nb]) for j in range(nb)]
        part = {"val": ring[:n_val], "unlabeled": ring[n_val:n_val + n_unl], "train": ring[n_val + n_unl:]}
        out.append({name: sorted(f for b in bl for f in blocks[b]) for name, bl in part.items()})
    return out


def _stamp(paths: list[Path]) -> list[list[int]]:
    out = []
    for p in paths:
        try:
            st = p.stat()
        except OSError:
            raise SckdError(f"{p}: file listed in dataset.json is missing") from None
        out.append([st.st_size, st.st_mtime_ns])
    return out


def _cache_files(cfg: DatasetConfig, fid: str, out: Path) -> list[Path]:
    """The files :func:`convert_frame` writes for frame ``fid``."""
    rt = out / RADAR_TREE / "training"
    files = [rt / "velodyne" / f"{fid}.bin", rt / "calib" / f"{fid}.txt", rt / "label_2" / f"{fid}.txt"]
    if cfg.lidar is not None:
        lt = out / LIDAR_TREE / "training"
        files += [lt / "velodyne" / f"{fid}.bin", lt / "calib" / f"{fid}.txt"]
    return files


def _crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            crc = zlib.crc32(chunk, crc)
    return crc


def _written(files: list[Path], out: Path) -> list[list]:
    """[path in the cache, size, mtime_ns, CRC-32] of each file just written."""
    rows = []
    for p in files:
        st = p.stat()
        rows.append([p.relative_to(out).as_posix(), st.st_size, st.st_mtime_ns, _crc32(p)])
    return rows


def _cache_intact(rows: list[list], files: list[Path], out: Path) -> tuple[bool, str]:
    """(still as written, the first file that is not); refreshes a row's time when only the
    time changed (same size and CRC, e.g. the cache was copied)."""
    if [r[0] for r in rows] != [p.relative_to(out).as_posix() for p in files]:
        return False, str(files[0])
    for r in rows:
        p = out / r[0]
        try:
            st = p.stat()
        except OSError:
            return False, f"{p} (missing)"
        if st.st_size != r[1]:
            return False, f"{p} ({st.st_size} bytes, {r[1]} written)"
        if st.st_mtime_ns != r[2]:
            if _crc32(p) != r[3]:
                return False, f"{p} (changed)"
            r[2] = st.st_mtime_ns
    return True, ""


def cache_note(cache: Path) -> str:
    """Said after an error in a file of the cache ``cache``: what it is and how to rebuild it."""
    return (f"the file is part of sckd's converted Astyx cache {cache}: rerun to convert frames whose cache "
            "changed again, or delete that folder to convert everything again")


def _frame_sources(cfg: DatasetConfig, paths: dict[str, Path]) -> list[Path]:
    keys = [astyx.RADAR_KEY, astyx.CALIB_KEY, astyx.LABEL_KEY]
    if cfg.lidar is not None:
        if astyx.LIDAR_KEY not in paths:
            raise SckdError(f"{Path(cfg.root) / 'dataset.json'}: a frame has no '{astyx.LIDAR_KEY}' entry "
                            f"(set dataset.lidar: null for radar only)")
        keys.append(astyx.LIDAR_KEY)
    return [paths[k] for k in keys]


def convert_frame(cfg: DatasetConfig, fid: str, paths: dict[str, Path], out: Path) -> None:
    """Read one frame's source files and write its cache files (each written atomically)."""
    calib = astyx.read_calibration(paths[astyx.CALIB_KEY])
    R = astyx.level_rotation(calib, cfg.astyx.level)
    assert cfg.radar.columns is not None
    radar = astyx.read_cloud(paths[astyx.RADAR_KEY], cfg.radar.columns, "radar point cloud")
    radar[:, :3] = radar[:, :3] @ R.T
    objects = astyx.read_objects(paths[astyx.LABEL_KEY])
    boxes = astyx.boxes_in_frame(objects, R)
    P2 = np.concatenate([calib.K, np.zeros((3, 1))], axis=1)
    vcalib = Calib(P2=P2, R0=np.eye(4), cam_from_radar=CAM_FROM_LEVEL)
    # predictions' image boxes through the real camera, as the labels' (levelled -> radar -> camera)
    R4 = np.eye(4)
    R4[:3, :3] = R.T
    image_cam = np.linalg.inv(calib.radar_from_camera) @ R4
    rt = out / RADAR_TREE / "training"
    write_bin(rt / "velodyne" / f"{fid}.bin", radar)
    write_calib(rt / "calib" / f"{fid}.txt", P2, np.eye(4), CAM_FROM_LEVEL, P2, image_cam)
    write_kitti_labels(rt / "label_2" / f"{fid}.txt", [o.name for o in objects], boxes, vcalib,
                       cfg.image_size, truncated=np.zeros(len(objects)),
                       occluded=np.array([o.occlusion for o in objects], dtype=np.int64),
                       bbox2d=astyx.image_boxes(objects, calib))
    if cfg.lidar is not None:
        assert cfg.lidar.columns is not None
        lidar = astyx.read_cloud(paths[astyx.LIDAR_KEY], cfg.lidar.columns, "LiDAR point cloud")
        T = calib.radar_from_lidar
        lidar[:, :3] = (lidar[:, :3] @ T[:3, :3].T + T[:3, 3]) @ R.T
        lt = out / LIDAR_TREE / "training"
        write_bin(lt / "velodyne" / f"{fid}.bin", lidar)
        # LiDAR points already share the radar's frame
        write_calib(lt / "calib" / f"{fid}.txt", P2, np.eye(4), CAM_FROM_LEVEL, P2, image_cam)


@contextlib.contextmanager
def _locked(path: Path):
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def prepare_astyx(cfg: DatasetConfig) -> Path:
    """Bring the cache of ``cfg.root`` up to date and return it (see the module docstring)."""
    src = Path(cfg.root).expanduser()
    if not (src / "dataset.json").is_file():
        raise SckdError(f"{src}: not an Astyx HiRes2019 folder (no dataset.json)")
    out = cache_root(cfg)
    index = astyx.read_index(src.resolve())
    stamps = {fid: _stamp(_frame_sources(cfg, p)) for fid, p in index.items()}
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SckdError(f"{out}: cannot create the Astyx cache ({e.strerror}); set dataset.astyx.cache_dir") from None
    with _locked(out / ".lock"):
        manifest_path = out / "manifest.json"
        try:
            done = json.loads(manifest_path.read_text()).get("frames", {})
        except (OSError, ValueError, AttributeError):
            done = {}
        done = done if isinstance(done, dict) else {}
        as_read = json.dumps(done)
        todo, stale = [], []
        for fid in index:
            entry = done.get(fid)
            if not isinstance(entry, dict) or entry.get("source") != stamps[fid]:
                todo.append(fid)  # new, changed at the source, or an older manifest
                continue
            try:
                ok, what = _cache_intact(entry.get("cache") or [], _cache_files(cfg, fid, out), out)
            except (TypeError, IndexError, ValueError, AttributeError):  # a hand-edited manifest
                ok, what = False, str(manifest_path)
            if not ok:
                todo.append(fid)
                stale.append(what)
        if stale:
            log.warning("%d frame(s) of the Astyx cache no longer match what was written (e.g. %s); "
                        "converting them again", len(stale), stale[0])
        if todo:
            for d in ("velodyne", "calib", "label_2"):
                (out / RADAR_TREE / "training" / d).mkdir(parents=True, exist_ok=True)
            if cfg.lidar is not None:
                for d in ("velodyne", "calib"):
                    (out / LIDAR_TREE / "training" / d).mkdir(parents=True, exist_ok=True)
            done = {f: s for f, s in done.items() if f in index and f not in todo}
            # disable=None: a bar on a terminal only, so errors stay one line in logs and tests
            bar = tqdm(todo, desc=f"converting Astyx -> {out}", unit="frame", disable=None, leave=False)
            for n, fid in enumerate(bar, 1):
                convert_frame(cfg, fid, index[fid], out)
                done[fid] = {"source": stamps[fid], "cache": _written(_cache_files(cfg, fid, out), out)}
                if n % 50 == 0 or n == len(todo):  # an interrupted conversion resumes from here
                    _write_manifest(manifest_path, src, done)
        elif json.dumps(done) != as_read:
            _write_manifest(manifest_path, src, done)  # refreshed times of a copied cache
        _write_splits(cfg, list(index), out)
    return out


def _write_manifest(path: Path, src: Path, frames: dict) -> None:
    _replace_text(path, json.dumps({"version": CONVERTER_VERSION, "source": str(src.resolve()), "frames": frames}))


def imagesets_dir(cfg: DatasetConfig, cache: Path) -> Path:
    return cache / RADAR_TREE / "ImageSets" / split_dir_name(cfg) / f"fold{cfg.astyx.fold}"


def listed_split(cfg: DatasetConfig, frame_ids: list[str]) -> dict[str, list[str]]:
    """``split: list``: the train / val ids of ``cfg.astyx.split_list``, checked against the frames."""
    path = Path(cfg.astyx.split_list).expanduser()
    if not path.is_file():
        path = resolve_config_path(cfg.astyx.split_list)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise SckdError(f"{path}: cannot read the split list ({getattr(e, 'strerror', None) or e})") from None
    except yaml.YAMLError as e:
        raise SckdError(f"{path}: malformed split list ({type(e).__name__})") from None
    parts = {}
    known = set(frame_ids)
    for name in ("train", "val"):
        ids = data.get(name) if isinstance(data, dict) else None
        if not isinstance(ids, list) or not ids:
            raise SckdError(f"{path}: no '{name}' list of frame ids")
        ids = [str(i) for i in ids]
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise SckdError(f"{path}: '{name}' lists frame {unknown[0]} that the Astyx folder does not hold")
        parts[name] = ids
    shared = set(parts["train"]) & set(parts["val"])
    if shared:
        raise SckdError(f"{path}: frame {sorted(shared)[0]} is in both train and val")
    return parts


def _write_splits(cfg: DatasetConfig, frame_ids: list[str], out: Path) -> None:
    a = cfg.astyx
    if a.split == "list":
        folds = [listed_split(cfg, frame_ids)]
    else:
        try:
            folds = block_splits(frame_ids, a.block_frames, a.val_fraction, a.unlabeled_fraction, a.folds,
                                 a.split_seed)
        except SckdError as e:  # a handful of frames: 'all' still works (info, predict); train/val say why not
            log.warning("%s; only the split 'all' is written", e)
            folds = [{} for _ in range(a.folds)]
    base = out / RADAR_TREE / "ImageSets" / split_dir_name(cfg)
    for k, parts in enumerate(folds):
        d = base / f"fold{k}"
        d.mkdir(parents=True, exist_ok=True)
        for name, ids in [*parts.items(), ("all", sorted(frame_ids))]:
            path = d / f"{name}.txt"
            text = "".join(f"{f}\n" for f in ids)
            if not path.is_file() or path.read_text() != text:
                _replace_text(path, text)


def _replace_text(path: Path, text: str) -> None:
    write_text_atomic(path, text, "cache file")
