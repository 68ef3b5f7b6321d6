"""Kernel-offset rulebooks for sparse 3D convolution, built by sorting linearised coordinates.

A rulebook lists, for every kernel offset ``k``, the pairs ``(in_idx, out_idx)`` such that the
input site ``in_idx`` contributes ``features[in_idx] @ W[k]`` to the output site ``out_idx``.
The semantics are those of a dense ``conv3d`` (cross-correlation) over the voxel grid, with
inactive sites holding zeros, evaluated only at the output sites:

- submanifold (``subm_rulebook``): stride 1, padding ``k // 2``, output sites = input sites;
- strided (``conv_rulebook``): any stride / padding; output sites = every grid cell of the
  dense output whose receptive field holds at least one active input (spconv's SparseConv3d).

Sites are ``(N, 4)`` int64 ``[batch, z, y, x]``; the spatial shape is ``(D, H, W)``. Offset
``k`` enumerates the kernel in C order over ``(kD, kH, kW)``, like a flattened conv weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def _triple(v: int | tuple[int, ...] | list[int]) -> tuple[int, int, int]:
    t = (v, v, v) if isinstance(v, int) else tuple(v)
    if len(t) != 3:
        raise ValueError(f"expected an int or 3 values, got {v!r}")
    return t  # type: ignore[return-value]


def linear_keys(indices: Tensor, shape: tuple[int, int, int]) -> Tensor:
    """``[b, z, y, x]`` rows -> one int64 key per row (C order over ``(B, D, H, W)``)."""
    d, h, w = shape
    return ((indices[:, 0] * d + indices[:, 1]) * h + indices[:, 2]) * w + indices[:, 3]


def keys_to_indices(keys: Tensor, shape: tuple[int, int, int]) -> Tensor:
    d, h, w = shape
    x = keys % w
    y = (keys // w) % h
    z = (keys // (w * h)) % d
    b = keys // (w * h * d)
    return torch.stack([b, z, y, x], dim=1)


def kernel_offsets(kernel: tuple[int, int, int], device: torch.device) -> Tensor:
    """(K, 3) integer kernel positions ``(kz, ky, kx)`` in ``[0, k)``, C order."""
    grids = torch.meshgrid(*[torch.arange(k, device=device) for k in kernel], indexing="ij")
    return torch.stack([g.reshape(-1) for g in grids], dim=1)


@dataclass
class Rulebook:
    """Gather/scatter pairs per kernel offset (see module docstring)."""

    in_idx: list[Tensor]
    """Per offset: (P_k,) int64 rows of the input features."""
    out_idx: list[Tensor]
    """Per offset: (P_k,) int64 rows of the output features."""
    n_out: int
    identity: int = -1
    """Offset whose pairs are ``i -> i`` for every site (the submanifold centre), else -1."""

    @property
    def n_pairs(self) -> int:
        return sum(int(i.numel()) for i in self.in_idx)


def _split_pairs(hit: Tensor, in_rows: Tensor, out_rows: Tensor) -> tuple[list[Tensor], list[Tensor]]:
    """(K, N) hit mask with matching in/out row tables -> per-offset pair lists."""
    counts = hit.sum(dim=1).tolist()
    return list(in_rows[hit].split(counts)), list(out_rows[hit].split(counts))


def subm_rulebook(indices: Tensor, shape: tuple[int, int, int], kernel_size) -> Rulebook:
    """Submanifold rulebook: output site ``p`` reads input ``p + k - kernel // 2``."""
    kernel = _triple(kernel_size)
    if any(k % 2 == 0 for k in kernel):
        raise ValueError(f"submanifold convolution needs odd kernel sizes, got {kernel}")
    n = indices.shape[0]
    keys = linear_keys(indices, shape)
    sorted_keys, order = keys.sort()
    half = torch.tensor([k // 2 for k in kernel], device=indices.device)
    rel = kernel_offsets(kernel, indices.device) - half                       # (K, 3)
    nb = indices[None, :, 1:] + rel[:, None, :]                              # (K, N, 3)
    lim = torch.tensor(shape, device=indices.device)
    valid = ((nb >= 0) & (nb < lim)).all(dim=2)
    nb_keys = ((indices[None, :, 0] * shape[0] + nb[..., 0]) * shape[1] + nb[..., 1]) * shape[2] + nb[..., 2]
    pos = torch.searchsorted(sorted_keys, nb_keys).clamp_(max=max(n - 1, 0))
    hit = valid & (sorted_keys[pos] == nb_keys)
    out_rows = torch.arange(n, device=indices.device).expand(len(rel), n)
    in_idx, out_idx = _split_pairs(hit, order[pos], out_rows)
    centre = int(((rel == 0).all(dim=1)).nonzero()[0])
    return Rulebook(in_idx, out_idx, n, identity=centre)


def conv_output_shape(shape, kernel_size, stride, padding) -> tuple[int, int, int]:
    k, s, p = _triple(kernel_size), _triple(stride), _triple(padding)
    return tuple((shape[i] + 2 * p[i] - k[i]) // s[i] + 1 for i in range(3))  # type: ignore[return-value]


def conv_rulebook(indices: Tensor, shape: tuple[int, int, int], kernel_size, stride,
                  padding) -> tuple[Rulebook, Tensor, tuple[int, int, int]]:
    """Strided rulebook. Returns (rulebook, output sites (M, 4), output spatial shape).

    Input ``c`` feeds output ``o`` through kernel position ``k`` when ``o * s - p + k = c``
    (dense conv3d indexing); output sites are sorted by their linear key.
    """
    kernel, s, p = _triple(kernel_size), _triple(stride), _triple(padding)
    out_shape = conv_output_shape(shape, kernel, s, p)
    dev = indices.device
    kpos = kernel_offsets(kernel, dev)                                        # (K, 3)
    num = indices[None, :, 1:] + torch.tensor(p, device=dev) - kpos[:, None, :]  # (K, N, 3)
    st = torch.tensor(s, device=dev)
    out_c = torch.div(num, st, rounding_mode="floor")
    valid = ((num % st) == 0).all(dim=2) & (out_c >= 0).all(dim=2) & \
        (out_c < torch.tensor(out_shape, device=dev)).all(dim=2)
    b = indices[None, :, 0].expand(len(kpos), -1)
    out_keys = ((b * out_shape[0] + out_c[..., 0]) * out_shape[1] + out_c[..., 1]) * out_shape[2] + out_c[..., 2]
    uniq, inverse = torch.unique(out_keys[valid], sorted=True, return_inverse=True)
    out_rows = torch.full_like(out_keys, -1)
    out_rows[valid] = inverse
    in_rows = torch.arange(indices.shape[0], device=dev).expand(len(kpos), -1)
    in_idx, out_idx = _split_pairs(valid, in_rows, out_rows)
    return Rulebook(in_idx, out_idx, int(uniq.numel())), keys_to_indices(uniq, out_shape), out_shape
