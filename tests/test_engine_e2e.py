"""``sckd train`` end to end with the real detector on a hand-made VoD tree (CPU, tiny grid)."""

import pytest
import torch
import yaml
from helpers.tiny_vod_config import tiny_radar_config
from helpers.vod_tree import make_vod_tree

from sckd.engine import checkpoint as ck

TINY = tiny_radar_config("tiny_pp", "{epochs: 2, batch_size: 2, workers: 0, val_every: 1, "
                         "log_every: 1, progress: false, seed: 7, ckpt_every: 1, ckpt_unit: epoch}")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    tree = make_vod_tree(root / "data", n_frames=7, splits={"train": [0, 1, 2, 3, 4], "val": [5, 6]})
    cfg = root / "tiny.yaml"
    cfg.write_text(TINY)
    return tree.root, cfg, root


def _reference_run(world, cli):
    """The uninterrupted default run (trained once per module, by whichever test needs it first)."""
    data, cfg, root = world
    ref = root / "run_full"
    if not (ref / "checkpoints" / "final.pt").is_file():
        assert cli("train", cfg, "--data", data, "--out", ref) == 0
    return ref


def _weights(path):
    return ck.load_checkpoint(path).model


def test_train_end_to_end_writes_a_complete_run(world, cli):
    data, cfg, root = world
    out = root / "run_full"
    assert cli("train", cfg, "--data", data, "--out", out) == 0
    for rel in ("config.yaml", "train.log", "checkpoints/final.pt", "checkpoints/best.pt"):
        assert (out / rel).is_file(), rel
    assert any(p.name.startswith("events.out.tfevents") for p in (out / "tb").iterdir())
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["dataset"]["root"] == str(data.resolve()) and saved["train"]["epochs"] == 2
    final = ck.load_checkpoint(out / "checkpoints" / "final.pt")
    # 5 frames, batch 2 -> 3 steps per epoch
    assert (final.epoch, final.step, final.iters_per_epoch) == (2, 6, 3)
    assert 0.0 <= final.metrics["entire_area/mAP_3d"] <= 100.0
    assert ck.load_checkpoint(out / "checkpoints" / "best.pt").best.metric == "entire_area/mAP_3d"
    log = (out / "train.log").read_text()
    assert "validation after epoch 2" in log and "step 6/6" in log
    # the one-cycle schedule ran to its end: lr = 0.01 / 10 / 1e4
    assert final.optimizer["param_groups"][0]["lr"] == pytest.approx(1e-7)


def test_interrupted_run_resumes_to_identical_weights(world, cli):
    data, cfg, root = world
    ref = _reference_run(world, cli)
    out = root / "run_split"
    # Stop after 4 of 6 steps (mid epoch 2), then the same command again continues (auto-resume).
    assert cli("train", cfg, "--data", data, "--out", out, "--max-steps", "4") == 0
    assert ck.latest_checkpoint(out / "checkpoints").name == "step_00000004.pt"
    assert not (out / "checkpoints" / "final.pt").exists()
    assert cli("train", cfg, "--data", data, "--out", out) == 0
    a, b = _weights(ref / "checkpoints" / "final.pt"), _weights(out / "checkpoints" / "final.pt")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert "resumed from" in (out / "train.log").read_text()


def test_train_cli_errors_are_one_line(world, cli, capsys, tmp_path):
    data, cfg, root = world
    assert cli("train", cfg, "--data", data, "--out", root / "x", "--set", "train.lr_max=1") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: config key 'train.lr_max': unknown key") and "\n" not in err
    assert cli("train", cfg, "--data", tmp_path / "nope", "--out", root / "x") == 2
    assert "--data is not a directory" in capsys.readouterr().err
    import sckd
    inside = str(sckd.__file__).rsplit("/", 1)[0] + "/runs_here"
    assert cli("train", cfg, "--data", data, "--out", inside) == 2
    assert "outside the source tree" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli("train", cfg, "--epochs", "0")


def test_predict_writes_one_kitti_file_per_frame(world, cli, capsys):
    data, cfg, root = world
    run = root / "run_full"
    if not (run / "checkpoints" / "final.pt").is_file():
        assert cli("train", cfg, "--data", data, "--out", run) == 0
    out = root / "preds"
    # a low threshold so the barely trained model writes something
    assert cli("predict", run / "checkpoints" / "final.pt", "--data", data, "--split", "val",
               "--out", out, "--set", "model.post.score_threshold=0.0") == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == ["00005.txt", "00006.txt"]
    lines = [ln.split() for f in files for ln in (out / f).read_text().splitlines()]
    assert lines and all(len(t) == 16 and t[0] in ("Car", "Pedestrian", "Cyclist") for t in lines)
    assert all(0.0 <= float(t[15]) <= 1.0 and min(map(float, t[8:11])) > 0 for t in lines)
    assert "2 frames" in capsys.readouterr().out
    # The same weights under another architecture are refused in one line.
    assert cli("predict", run / "checkpoints" / "final.pt", "--data", data, "--out", out,
               "--set", "model.backbone_2d.num_filters=[8, 32]") == 2
    assert "checkpoint is from another model" in capsys.readouterr().err


def test_resume_without_a_path_continues_the_newest_run(world, cli, monkeypatch):
    data, cfg, root = world
    monkeypatch.setenv("SCKD_RUNS", str(root / "runs"))
    common = ("--data", data, "--set", "train.val_every=0", "--epochs", "1")
    assert cli("train", cfg, *common, "--max-steps", "2") == 0
    (run,) = list((root / "runs").iterdir())
    assert run.name.startswith("tiny_pp-")
    assert ck.latest_checkpoint(run / "checkpoints").name == "step_00000002.pt"
    assert cli("train", cfg, *common, "--resume") == 0
    assert list((root / "runs").iterdir()) == [run]  # continued in place, no new folder
    assert ck.load_checkpoint(run / "checkpoints" / "final.pt").step == 3
    # --resume PATH to a checkpoint continues in that checkpoint's run folder too (here with a
    # longer schedule: a counted warning, the config's schedule wins)
    assert cli("train", cfg, "--data", data, "--set", "train.val_every=0", "--epochs", "2",
               "--resume", run / "checkpoints" / "final.pt") == 0
    final = ck.load_checkpoint(run / "checkpoints" / "final.pt")
    assert final.step == 6 and final.scheduler["total_steps"] == 6


def test_channels_last_trains_the_same_model_and_its_checkpoint_predicts(world, cli):
    """train.channels_last changes the memory layout only: the weights after training match the
    default layout's up to float rounding, and `sckd predict` loads the checkpoint normally."""
    data, cfg, root = world
    ref = _reference_run(world, cli)
    out = root / "run_nhwc"
    assert cli("train", cfg, "--data", data, "--out", out, "--set", "train.channels_last=true") == 0
    a, b = _weights(ref / "checkpoints" / "final.pt"), _weights(out / "checkpoints" / "final.pt")
    assert a.keys() == b.keys()
    assert any(v.dim() == 4 and v.is_contiguous(memory_format=torch.channels_last) and not v.is_contiguous()
               for v in b.values())
    for k in a:
        torch.testing.assert_close(b[k].float(), a[k].float(), rtol=1e-3, atol=1e-4, msg=k)
    assert cli("predict", out / "checkpoints" / "final.pt", "--data", data, "--out", root / "nhwc_preds") == 0
    assert len(list((root / "nhwc_preds").glob("*.txt"))) == 2
