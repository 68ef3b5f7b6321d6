"""Pack the Astyx files sckd's converter reads (dataset.json, calibration, labels, radar and
LiDAR clouds; no camera images) into BUNDLE/{meta.tar.xz,points.npz.xz}, about 48 MB:

    python benchmarks/astyx_gpu/pack.py ASTYX_ROOT BUNDLE

LiDAR x y z are stored in centimetres as int16 where the file holds 2 decimals (the real data:
exact), else in float32, with the reflectivity; radar columns in float32 (the converter's cache
is float32: on the real data the cached radar points differ by at most 7.6e-6 m, labels and
calib files are byte-identical, 2026-12-04)."""
import json, sys, tarfile, io, lzma
from pathlib import Path
import numpy as np
src = Path(sys.argv[1]); out = Path(sys.argv[2]); out.mkdir(parents=True, exist_ok=True)
idx = json.loads((src / "dataset.json").read_text())["data"]
radar, lidar = {}, {}
for key, e in idx.items():
    for k, store in (("radar_6455", radar), ("lidar_vlp16", lidar)):
        lines = (src / e[k]).read_text().lstrip().split("\n", 1)
        hdr = lines[0].split()
        a = np.array(lines[1].split(), dtype=np.float64).reshape(-1, len(hdr))
        store[e[k]] = (hdr, a)
arrs = {}
for p, (hdr, a) in radar.items():
    arrs["R|" + p] = a.astype(np.float32)
    arrs["RH|" + p] = np.array(hdr)
for p, (hdr, a) in lidar.items():
    xyz = np.round(a[:, :3] * 100)
    if np.abs(xyz).max() < 32767 and np.allclose(xyz / 100, a[:, :3], rtol=0, atol=1e-9):
        arrs["L|" + p] = xyz.astype(np.int16)  # centimetres, exact
    else:
        arrs["LF|" + p] = a[:, :3].astype(np.float32)
    refl = a[:, 3]
    arrs["LR|" + p] = refl.astype(np.uint8) if (refl == refl.astype(np.uint8)).all() else refl.astype(np.float32)
    arrs["LH|" + p] = np.array(hdr)
buf = io.BytesIO(); np.savez(buf, **arrs)
(out / "points.npz.xz").write_bytes(lzma.compress(buf.getvalue(), preset=9))
with tarfile.open(out / "meta.tar.xz", "w:xz") as t:
    for d in ("calibration", "groundtruth_obj3d", "dataset.json"):
        t.add(src / d, arcname=d)
