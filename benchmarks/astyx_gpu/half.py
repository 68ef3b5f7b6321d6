"""A trained checkpoint's weights and config in float16, without the training state (to fit the
device tool's 16 MiB per file); `sckd` reads it after converting back (see issue 28 notes)."""
import sys, torch
d = torch.load(sys.argv[1], map_location="cpu", weights_only=True)
for k in ("optimizer", "scheduler", "scaler", "rng"):
    d.pop(k, None)
d["model"] = {k: (v.half() if v.is_floating_point() else v) for k, v in d["model"].items()}
torch.save(d, sys.argv[2])
