"""Checkpoint faults (issue 29): a full disk while writing names the file and says so; changed
bytes (zip CRC), inf/NaN weights and a picture given as a checkpoint are one-line errors
wherever a checkpoint is used; the ONNX self-check fails on a NaN difference."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
import zipfile

import pytest
import torch
from helpers.tiny_student import train_on_tiny_world

from sckd.engine import checkpoint as ck
from sckd.errors import SckdError

STUDENT = ["experiments/synth/pointpillars_radar", "--set", "train.epochs=1", "--set", "train.val_every=0",
           "--set", "train.batch_size=4"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckfaults")
    world, final = train_on_tiny_world(root, 12, *STUDENT)
    return root, world, final


def _flip_a_weight_byte(src, dst):
    """Copy ``src`` with one byte in the middle of its largest tensor entry changed."""
    with zipfile.ZipFile(src) as z:
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    data = bytearray(src.read_bytes())
    name_len, extra_len = int.from_bytes(data[info.header_offset + 26: info.header_offset + 28], "little"), \
        int.from_bytes(data[info.header_offset + 28: info.header_offset + 30], "little")
    at = info.header_offset + 30 + name_len + extra_len + info.file_size // 2 + 3
    data[at] ^= 0x7F  # the top byte of a float32: the weight becomes huge but finite
    dst.write_bytes(bytes(data))
    return dst


def test_changed_bytes_are_refused_everywhere_with_the_file_named(trained, cli, capsys):
    root, world, final = trained
    bad = _flip_a_weight_byte(final, root / "flipped.pt")
    with pytest.raises(SckdError, match=rf"^{bad}: checkpoint is corrupt \(its entry \S+/data/\d+ fails the CRC-32"):
        ck.load_checkpoint(bad)
    assert cli("-q", "predict", bad, "--data", world, "--out", root / "p1") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {bad}: checkpoint is corrupt") and "\n" not in err
    assert not (root / "p1").exists()


def _with_inf(final, dst, name=None):
    c = ck.load_checkpoint(final)
    name = name or next(k for k, v in c.model.items() if v.is_floating_point() and v.numel() > 1)
    c.model[name] = c.model[name].clone()
    c.model[name].view(-1)[1] = float("inf")
    ck.save_checkpoint(c, dst)  # a well-formed file (its CRC matches): the weights are the fault
    return dst, name


def test_non_finite_weights_are_refused_for_inference_teaching_and_resuming(trained, cli, capsys):
    root, world, final = trained
    bad, name = _with_inf(final, root / "inf.pt")
    msg = f"error: {bad}: weight '{name}' holds non-finite values (inf/NaN)"
    assert cli("-q", "predict", bad, "--data", world, "--out", root / "p2") == 2
    assert capsys.readouterr().err.startswith(msg)
    assert cli("-q", "train", "experiments/synth/sckd_student", "--data", world, "--out", root / "kd",
               "--set", f"distill.teacher.checkpoint={bad}", "--set", "train.epochs=1") == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(msg)
    step = ck.latest_checkpoint(final.parent)
    bad_step, _ = _with_inf(step, root / "run" / "checkpoints" / "step_00000099.pt", name)
    assert cli("-q", "train", *STUDENT, "--data", world, "--out", root / "run") == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(f"error: {bad_step}: weight '{name}'")
    bad_step.unlink()


def test_a_picture_is_not_called_pickled_code(tmp_path):
    png = tmp_path / "photo.pt"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    with pytest.raises(SckdError) as e:
        ck.load_checkpoint(png)
    assert str(e.value) == f"{png}: not a readable checkpoint (it is a PNG image, not a torch file)"


def test_full_disk_while_writing_names_the_file(tmp_path, monkeypatch):
    import sckd.atomic as atomic

    target = tmp_path / "step_00000002.pt"
    ck.save_checkpoint(ck.Checkpoint({"x": torch.arange(3)}, {}), target)
    real_fdopen = os.fdopen

    class Full:
        """A file on a disk with 100 bytes left."""

        def __init__(self, f):
            self.f, self.left = f, 100

        def write(self, b):
            if len(b) > self.left:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.left -= len(b)
            return self.f.write(b)

        def __getattr__(self, k):
            return getattr(self.f, k)

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return self.f.__exit__(*a)

    monkeypatch.setattr(atomic.os, "fdopen", lambda fd, mode: Full(real_fdopen(fd, mode)))
    with pytest.raises(SckdError) as e:
        ck.save_checkpoint(ck.Checkpoint({"x": torch.zeros(10_000)}, {}), target)
    assert str(e.value).startswith(f"{target}: cannot write checkpoint (no space left on device; free some space")
    monkeypatch.undo()
    assert ck.load_checkpoint(target).model["x"].tolist() == [0, 1, 2]  # the old one is intact
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_file_size_limit_while_writing_names_the_file(tmp_path):
    """A real write failing in the kernel (``ulimit -f``), in a child process."""
    target = tmp_path / "final.pt"
    script = textwrap.dedent(f"""
        import resource, signal, torch
        from sckd.engine import checkpoint as ck
        from sckd.errors import SckdError
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
        try:
            ck.save_checkpoint(ck.Checkpoint({{"x": torch.zeros(100_000)}}, {{}}), {str(target)!r})
        except SckdError as e:
            print(e)
    """)
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert p.stdout.strip().startswith(f"{target}: cannot write checkpoint (file too large"), p.stdout + p.stderr
    assert not target.exists()


def test_export_self_check_fails_on_a_nan_difference(trained, monkeypatch):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from sckd.deploy import onnx_export

    root, _, final = trained
    real = onnx_export.OnnxNetwork

    class NanSecondOutput(real):
        def __call__(self, *inputs):
            out = list(super().__call__(*inputs))
            out[-1] = torch.full_like(out[-1], float("nan"))  # not the first: max() would skip it
            return tuple(out)

    monkeypatch.setattr(onnx_export, "OnnxNetwork", NanSecondOutput)
    out = root / "nan.onnx"
    with pytest.raises(SckdError, match=rf"^{final}: ONNX self-check failed: PyTorch vs ONNX Runtime max \|diff\| is nan"):
        onnx_export.export_onnx(final, out)
    assert not out.exists()
