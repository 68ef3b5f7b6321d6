"""The synthetic 4D-radar + LiDAR world behind ``sckd synth`` (View-of-Delft layout).

    from sckd.data.synth import load_synth_config, synthesize
    report = synthesize("/tmp/world", frames=200, seed=0, cfg=load_synth_config(), workers=2)

Modules: config (the ``synth:`` section), street / actors / spawn / ego / scene (the world and
its motion), raycast, lidar, radar (sensors), simulate (frames of a sequence), writer (VoD
tree), realism (statistics against real VoD), world (orchestration).
"""

from sckd.data.synth.config import SynthConfig, load_synth_config
from sckd.data.synth.world import SynthReport, synthesize

__all__ = ["SynthConfig", "SynthReport", "load_synth_config", "synthesize"]
