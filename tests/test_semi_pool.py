"""Semi-supervised frame pools: labeled fraction by sequence, unlabeled extras, epoch length."""

from collections import Counter

import pytest
from helpers.vod_tree import dataset_config, make_vod_tree

from sckd.config import from_dict
from sckd.data.semi import (EpochView, PoolConfig, PoolDataset, build_pool, draw_groups, frame_groups,
                            labeled_share)
from sckd.errors import SckdError


def _ids(*ranges):
    return [f"{i:05d}" for r in ranges for i in r]


def test_runs_of_consecutive_ids_stand_in_for_sequences():
    ids = _ids(range(0, 5), range(10, 13), range(14, 16))
    assert frame_groups(ids) == [_ids(range(0, 5)), _ids(range(10, 13)), _ids(range(14, 16))]
    assert frame_groups(ids, max_gap=2) == [_ids(range(0, 5)), _ids(range(10, 13), range(14, 16))]
    assert frame_groups(ids, run_frames=2) == [_ids(range(0, 2)), _ids(range(2, 4)), _ids([4]),
                                               _ids(range(10, 12)), _ids([12]), _ids(range(14, 16))]
    assert frame_groups(["a", "b"]) == [["a"], ["b"]]


def test_a_sequence_table_groups_frames_and_must_cover_them():
    seq = {"00001": "s1", "00002": "s2", "00003": "s1"}
    assert frame_groups(["00001", "00002", "00003"], sequences=seq) == [["00001", "00003"], ["00002"]]
    with pytest.raises(SckdError, match="00004 has no sequence entry"):
        frame_groups(["00001", "00004"], sequences=seq)


def test_draw_takes_whole_groups_near_the_fraction_and_is_seeded():
    groups = [_ids(range(k * 60, k * 60 + 60)) for k in range(8)]  # 8 sequences of 60 frames
    a = draw_groups(groups, 0.25, seed=3)
    assert len(a) == 120  # exactly 2 of 8 sequences
    assert all(set(g) <= a or not (set(g) & a) for g in groups)  # never a partial sequence
    assert a == draw_groups(groups, 0.25, seed=3)
    others = {frozenset(draw_groups(groups, 0.25, seed=s)) for s in range(10)}
    assert len(others) > 1
    assert len(draw_groups(groups, 0.01, seed=0)) == 60  # at least one group
    assert len(draw_groups(groups, 1.0, seed=0)) == 480


def test_fraction_one_keeps_everything_in_order():
    cfg = PoolConfig()
    ids = _ids([5, 3, 9])
    assert labeled_share(cfg, None, ids) == ids  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("pool")
    return make_vod_tree(root / "d", n_frames=14, n_radar=5, n_lidar=10,
                         splits={"train": list(range(0, 8)), "val": [8, 9], "unlabeled": list(range(10, 14))})


def _pool(tree, cfg_raw, use_labels=True):
    ds = dataset_config(tree, splits={"train": "train.txt", "val": "val.txt", "unlabeled": "unlabeled.txt"})
    cfg = from_dict(PoolConfig, cfg_raw, "pool")
    return build_pool(ds, cfg, "train", use_labels=use_labels, with_lidar=False, augment=None, seed=0)


def test_default_pool_is_the_plain_labeled_split(tree):
    p = _pool(tree, {})
    assert p.frame_ids == tree.splits["train"] and all(p[i].has_labels for i in range(len(p)))


def test_quarter_share_rest_unlabeled_and_unlabeled_split(tree):
    raw = {"labeled_fraction": 0.25, "run_frames": 2, "fraction_seed": 1}
    share = _pool(tree, raw)
    assert len(share) == 2 and int(share.frame_ids[0]) % 2 == 0  # one whole 2-frame block
    full = _pool(tree, {**raw, "rest_of_split": "unlabeled", "unlabeled_splits": ["unlabeled"]})
    assert isinstance(full, PoolDataset) and len(full) == 12
    frames = [full[i] for i in range(len(full))]
    labeled = {f.frame_id for f in frames if f.has_labels}
    assert labeled == set(share.frame_ids)  # the same seeded quarter as the teacher's
    assert all(len(f.boxes) == 0 for f in frames if not f.has_labels)
    assert Counter(f.frame_id for f in frames) == Counter(tree.splits["train"] + tree.splits["unlabeled"])
    student = _pool(tree, {**raw, "rest_of_split": "unlabeled"}, use_labels=False)
    assert not any(student[i].has_labels for i in range(len(student)))  # no GT leaks into the student


def test_epoch_counted_by_the_labeled_share_walks_the_pool(tree):
    raw = {"labeled_fraction": 0.25, "run_frames": 2, "rest_of_split": "unlabeled", "epoch": "labeled"}
    view = _pool(tree, raw)
    assert isinstance(view, EpochView) and len(view) == 2 and len(view.base) == 8
    seen = Counter()
    for e in range(8):  # 8 epochs x 2 frames = two passes over the 8-frame pool
        view.set_epoch(e)
        idx = [view.base_index(i) for i in range(len(view))]
        seen.update(idx)
    assert seen == Counter({i: 2 for i in range(8)})
    frames = _pool(tree, {"epoch": "frames", "epoch_frames": 5})
    assert len(frames) == 5


def test_pool_config_errors_name_the_key(tree):
    with pytest.raises(SckdError, match="pool.labeled_fraction"):
        from_dict(PoolConfig, {"labeled_fraction": 0.0}, "pool")
    with pytest.raises(SckdError, match="pool.epoch_frames"):
        from_dict(PoolConfig, {"epoch": "frames"}, "pool")
    with pytest.raises(SckdError, match="pool.unlabeled_splits.*'nope'"):
        _pool(tree, {"unlabeled_splits": ["nope"]})
    with pytest.raises(SckdError, match="pool.sequence_file"):
        _pool(tree, {"labeled_fraction": 0.5, "sequence_file": "missing.txt"})


def test_sequence_file_in_imagesets_drives_the_draw(tree):
    seq = "".join(f"{fid} {'a' if int(fid) < 6 else 'b'}\n" for fid in tree.splits["train"])
    (tree.imagesets_dir / "sequences.txt").write_text(seq)
    got = _pool(tree, {"labeled_fraction": 0.25, "sequence_file": "sequences.txt"})
    assert got.frame_ids in (_ids(range(0, 6)), _ids(range(6, 8)))
    assert got.frame_ids == _ids(range(6, 8))  # 2 frames is closer to a quarter of 8 than 6
