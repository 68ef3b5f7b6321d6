"""Back from .gpu/half.py: float32 weights in a checkpoint sckd loads (atomic write, format 2)."""
import sys, torch
from sckd.engine.checkpoint import Checkpoint, save_checkpoint, load_checkpoint
d = torch.load(sys.argv[1], map_location="cpu", weights_only=True)
d["model"] = {k: (v.float() if v.is_floating_point() else v) for k, v in d["model"].items()}
torch.save(d, sys.argv[2])
print(load_checkpoint(sys.argv[2]).epoch)
