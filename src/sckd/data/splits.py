"""Frame lists of a split (``ImageSets/<file>``, or every frame when there is no ImageSets)."""

from __future__ import annotations

from sckd.data.config import DatasetConfig
from sckd.data.layout import DatasetLayout, say_once
from sckd.errors import SckdError


def all_frames(layout: DatasetLayout) -> list[str]:
    """Every frame id with a radar ``.bin`` under ``training/``, sorted."""
    if not layout.radar_dir.is_dir():
        raise SckdError(f"{layout.radar_dir}: radar point folder does not exist")
    return sorted(p.stem for p in layout.radar_dir.glob("*.bin"))


def list_split(cfg: DatasetConfig, split: str, layout: DatasetLayout | None = None) -> list[str]:
    """Frame ids of ``split`` in file order.

    The split file is ``cfg.splits[split]`` inside ``ImageSets/`` (radar tree first, then the
    LiDAR tree, for the VoD layout; ``ROOT/ImageSets`` for the KITTI layout). Without an
    ImageSets folder every frame under ``training/`` forms the split (logged once). A listed
    frame without its radar ``.bin`` and an empty split raise :class:`SckdError`.
    """
    layout = layout or DatasetLayout(cfg)
    if layout.imagesets_dir is None:
        say_once(f"{layout.radar_root}: no ImageSets folder; every frame under "
                 f"{layout.radar_dir} forms the split")
        frames = all_frames(layout)
        if not frames:
            raise SckdError(f"{layout.radar_dir}: no .bin frames, so split '{split}' is empty")
        return frames
    if split not in cfg.splits:
        raise SckdError(f"config key 'dataset.splits': no split named '{split}' "
                        f"(known: {', '.join(sorted(cfg.splits)) or 'none'})")
    path = layout.imagesets_dir / cfg.splits[split]
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SckdError(f"{path}: split file for '{split}' is missing") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SckdError(f"{path}: cannot read split file ({getattr(e, 'strerror', None) or e})") from None
    frames = []
    for n, line in enumerate(text.splitlines(), 1):
        tok = line.split()
        if not tok:
            continue
        if len(tok) != 1:
            raise SckdError(f"{path}:{n}: expected one frame id per line, got {line.strip()!r}")
        frames.append(tok[0])
    if not frames:
        raise SckdError(f"{path}: split '{split}' is empty")
    check_frames_exist(layout, frames, str(path))
    return frames


def check_frames_exist(layout: DatasetLayout, frames: list[str], source: str) -> None:
    """Raise naming ``source`` and the first frame whose radar ``.bin`` is missing."""
    row = 4 * len(layout.cfg.radar.file_features)
    for fid in frames:
        path = layout.radar_bin(fid)
        try:
            size = path.stat().st_size
        except OSError:
            raise SckdError(f"{source}: frame {fid} is listed but {path} does not exist") from None
        # A stat per frame is cheap and catches a truncated file at start-up, not hours into training.
        if size % row:
            raise SckdError(f"{path}: size {size} bytes is not a multiple of {row} "
                            f"({row // 4} float32 features per point); check the dataset's feature list")
