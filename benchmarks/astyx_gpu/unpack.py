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

def main(src, dst):
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
        elif kind == "L":
            refl = z["LR|" + p]
            items.append((dst / p, ["X", "Y", "Z", "Reflectivity"], [z[k] / 100.0, refl.astype(np.float64)],
                          ["%.2f", "%.2f", "%.2f", "%.9g"]))
    with ProcessPoolExecutor(12) as ex:
        list(ex.map(write, items, chunksize=8))
    print(f"unpacked {len(items)} clouds into {dst}")

if __name__ == "__main__":
    main(*sys.argv[1:])
