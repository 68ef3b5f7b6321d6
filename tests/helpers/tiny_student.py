"""A synthetic world and a radar detector briefly trained on it, for tests that need a real
checkpoint (export, prediction, cross-dataset reading)."""

from __future__ import annotations

from pathlib import Path


def train_on_tiny_world(root: Path, frames: int, config: str, *train_args: str) -> tuple[Path, Path]:
    """Write a ``frames``-frame world (sequences of 4) under ``root/world``, train ``config`` on
    it with ``train_args`` into ``root/run``; returns (world, final checkpoint)."""
    from sckd.cli import main
    from sckd.data.synth.config import load_synth_config
    from sckd.data.synth.world import synthesize

    world = root / "world"
    synthesize(world, frames, 0, load_synth_config(None, ["synth.sequence.frames_per_sequence=4"]), workers=1)
    run = root / "run"
    assert main(["-q", "train", config, *train_args, "--data", str(world), "--out", str(run)]) == 0
    return world, run / "checkpoints" / "final.pt"
