"""Process-group set-up for ``torchrun`` and the few collectives the trainer needs.

``torchrun --nproc_per_node=N`` sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT;
without them the run is a single process and every helper here is a no-op. The backend
follows the device: NCCL on CUDA, gloo on CPU. SyncBatchNorm is used on CUDA only (gloo has
no SyncBN kernels).

Models are trained through their ``training_step(batch)`` method, but DDP only synchronises
gradients for work that went through its ``forward``: :class:`StepModule` routes one into the
other.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from sckd.errors import SckdError

log = logging.getLogger("sckd")


@dataclass
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(pref: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> CUDA if available else CPU; ``cuda`` without a GPU is an error."""
    if pref not in ("auto", "cpu", "cuda"):
        raise SckdError(f"config key 'train.device': {pref!r} is not one of auto, cpu, cuda")
    if pref == "cuda" and not torch.cuda.is_available():
        raise SckdError("config key 'train.device': 'cuda' requested but no CUDA device is available")
    if pref == "cpu" or (pref == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SckdError(f"environment variable {name}: expected an integer, got {raw!r}") from None


def init_distributed(device_pref: str = "auto", timeout_min: float = 30.0) -> DistEnv:
    """Read the torchrun environment, pick the device and (if WORLD_SIZE > 1) join the group."""
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local = _env_int("LOCAL_RANK", 0)
    device = resolve_device(device_pref, local)
    env = DistEnv(rank, world, local, device)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, rank=rank, world_size=world,
                                timeout=datetime.timedelta(minutes=timeout_min))
        log.info("distributed: rank %d/%d, backend %s, device %s", rank, world, backend, device)
    return env


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


def all_gather_objects(env: DistEnv, obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable, tensors on CPU), in rank order; ``[obj]`` when alone."""
    if not env.distributed:
        return [obj]
    out: list[Any] = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(env: DistEnv, obj: Any, src: int = 0) -> Any:
    if not env.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def any_rank(env: DistEnv, flag: bool) -> bool:
    """True on every rank if ``flag`` is true on any rank (used to stop all ranks together)."""
    if not env.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=env.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


class StepModule(nn.Module):
    """``forward(batch) == model.training_step(batch)``, so DDP sees the training step."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Any) -> dict[str, torch.Tensor]:
        return self.model.training_step(batch)


def wrap_for_training(model: nn.Module, env: DistEnv, *, sync_bn: bool = True,
                      find_unused_parameters: bool = False) -> nn.Module:
    """The module whose ``forward(batch)`` runs one training step: DDP-wrapped when distributed.

    The returned wrapper shares parameters with ``model``; save and validate ``model`` itself.
    """
    step = StepModule(model)
    if not env.distributed:
        return step
    if sync_bn and env.device.type == "cuda":
        # convert_sync_batchnorm rebuilds BN modules: convert the inner model in place.
        step.model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    device_ids = [env.device.index] if env.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(step, device_ids=device_ids,
                                               find_unused_parameters=find_unused_parameters)


def unwrap(module: nn.Module) -> nn.Module:
    """The user model inside a StepModule / DDP wrapper."""
    if isinstance(module, nn.parallel.DistributedDataParallel):
        module = module.module
    if isinstance(module, StepModule):
        module = module.model
    return module
