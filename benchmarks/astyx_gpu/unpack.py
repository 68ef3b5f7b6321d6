"""Rebuild the Astyx files sckd's converter reads from the compact bundle (pack.py)."""
import io, lzma, sys, tarfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
import numpy as np

def write(item):
    path, hdr, cols, fmt = item
    body = np.column_stack(cols)
    with open(path, "w") as f:
        f.write(" ".join(hdr) + "\n")
        np.savetxt(f, body, fmt=fmt)

def main(src, dst, workers=12):
    src, dst = Path(src), Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    with tarfile.open(src / "meta.tar.xz") as t:
        t.extractall(dst)
    z = np.load(io.BytesIO(lzma.decompress((src / "points.npz.xz").read_bytes())))
    items = []
    for k in z.files:
        kind, p = k.split("|", 1)
        (dst / p).parent.mkdir(parents=True, exist_ok=True)
        if kind == "R":
            items.append((dst / p, list(z["RH|" + p]), [z[k].astype(np.float64)], "%.9g"))
        elif kind in ("L", "LF"):
            refl = z["LR|" + p]
            xyz, fmt = (z[k] / 100.0, "%.2f") if kind == "L" else (z[k].astype(np.float64), "%.9g")
            items.append((dst / p, ["X", "Y", "Z", "Reflectivity"], [xyz, refl.astype(np.float64)],
                          [fmt, fmt, fmt, "%.9g"]))
    with ProcessPoolExecutor(int(workers)) as ex:
        list(ex.map(write, items, chunksize=8))
    print(f"unpacked {len(items)} clouds into {dst}")

if __name__ == "__main__":
    main(*sys.argv[1:])
