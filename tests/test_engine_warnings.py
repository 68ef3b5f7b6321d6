"""Counted warnings raised inside DataLoader worker processes reach the main process's count
(the run's summary), as many as when the frames load in the main process."""

import pytest
from helpers.engine_toys import ToyDataset, ToyDetector, collate

from sckd.engine.config import TrainConfig
from sckd.engine.distributed import DistEnv
from sckd.engine.seeding import seed_everything
from sckd.engine.trainer import Trainer
from sckd.engine.validation import run_predictions
from sckd.errors import warnings


class WarningToys(ToyDataset):
    """Every third frame is 'bad': its loading warns (as a NaN point cloud would)."""

    def __getitem__(self, i):
        if i % 3 == 0:
            warnings.warn("toy frame with a problem", f"frame {i}")
        return super().__getitem__(i)


@pytest.mark.parametrize("workers", [0, 2])
def test_worker_warnings_are_counted_in_the_main_process(tmp_path, workers):
    seed_everything(0)
    warnings.reset()
    cfg = TrainConfig(epochs=2, batch_size=4, workers=workers, lr=0.01, seed=1, val_every=0, progress=False,
                      log_every=100)
    model = ToyDetector()
    trainer = Trainer(model, cfg, WarningToys(n=10), collate, run_dir=tmp_path / "run", env=DistEnv())
    trainer.fit()
    assert warnings.counts["toy frame with a problem"] == 2 * 4  # frames 0, 3, 6, 9 in each epoch
    run_predictions(model, WarningToys(n=7), collate, env=DistEnv(), batch_size=2, workers=workers)
    assert warnings.counts["toy frame with a problem"] == 2 * 4 + 3  # 0, 3, 6
    assert warnings.examples["toy frame with a problem"].startswith("frame ")
    warnings.reset()
    assert not warnings.counts and not warnings.summary()
