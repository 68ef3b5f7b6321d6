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


def triple(v: int | tuple[int, ...] | list[int]) -> tuple[int, int, int]:
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
    """Gather/scatter pairs of all kernel offsets, concatenated (see module docstring)."""

    in_idx: Tensor
    """(P,) int64 rows of the input features."""
    out_idx: Tensor
    """(P,) int64 rows of the output features."""
    segments: list[tuple[int, int, int]]
    """``(k, start, stop)``: pairs ``start:stop`` use kernel offset ``k`` (non-empty ones only)."""
    n_out: int
    n_in: int
    n_offsets: int
    identity: int = -1
    """Offset whose pairs are ``i -> i`` for every site (the submanifold centre; its pairs
    are implicit, not stored), else -1."""

    @property
    def n_pairs(self) -> int:
        """Stored pairs plus the implicit identity pairs."""
        return int(self.in_idx.numel()) + (self.n_out if self.identity >= 0 else 0)

    def pairs(self, k: int) -> tuple[Tensor, Tensor]:
        """(in, out) rows of offset ``k``."""
        if k == self.identity:
            ident = torch.arange(self.n_out, device=self.in_idx.device)
            return ident, ident
        for kk, a, b in self.segments:
            if kk == k:
                return self.in_idx[a:b], self.out_idx[a:b]
        empty = self.in_idx[:0]
        return empty, empty


def _segments(offsets: list[int], counts: list[int]) -> list[tuple[int, int, int]]:
    segs, start = [], 0
    for k, c in zip(offsets, counts):
        if c:
            segs.append((k, start, start + c))
        start += c
    return segs


def subm_rulebook(indices: Tensor, shape: tuple[int, int, int], kernel_size) -> Rulebook:
    """Submanifold rulebook: output site ``p`` reads input ``p + k - kernel // 2``.

    Keys live in a grid padded by the kernel radius, so a neighbour key is ``key + offset_key``
    with no bounds checks (a neighbour in the padding never matches a site). Only half of the
    offsets are searched: offset ``k`` pairs (i -> o) are offset ``K - 1 - k`` pairs (o -> i).
    """
    kernel = triple(kernel_size)
    if any(k % 2 == 0 for k in kernel):
        raise ValueError(f"submanifold convolution needs odd kernel sizes, got {kernel}")
    dev = indices.device
    n = indices.shape[0]
    rad = [k // 2 for k in kernel]
    padded = tuple(shape[i] + 2 * rad[i] for i in range(3))
    keys = linear_keys(indices + torch.tensor([0, *rad], device=dev), padded)  # type: ignore[arg-type]
    sorted_keys, order = keys.sort()
    rel = kernel_offsets(kernel, dev) - torch.tensor(rad, device=dev)          # (K, 3)
    off_keys = (rel[:, 0] * padded[1] + rel[:, 1]) * padded[2] + rel[:, 2]    # (K,)
    n_k = len(rel)
    half = n_k // 2                                                           # offsets before the centre
    query = sorted_keys[None, :] + off_keys[:half, None]                      # (half, N), rows sorted
    pos = torch.searchsorted(sorted_keys, query).clamp_(max=max(n - 1, 0))
    hit = sorted_keys[pos] == query if n else torch.zeros_like(query, dtype=torch.bool)
    counts = hit.sum(dim=1).tolist()
    nb = order[pos[hit]]                     # neighbour sites (inputs of offsets 0 .. half-1)
    me = order.expand(half, n)[hit]          # the sites reading them
    # The mirrored offsets K-1, K-2, ..., half+1 of offsets 0, 1, ..., half-1 hold the same
    # pairs with input and output swapped.
    offsets = list(range(half)) + list(range(n_k - 1, half, -1))
    return Rulebook(torch.cat([nb, me]), torch.cat([me, nb]), _segments(offsets, counts + counts), n, n,
                    n_k, identity=half)


def conv_output_shape(shape, kernel_size, stride, padding) -> tuple[int, int, int]:
    k, s, p = triple(kernel_size), triple(stride), triple(padding)
    return tuple((shape[i] + 2 * p[i] - k[i]) // s[i] + 1 for i in range(3))  # type: ignore[return-value]


def conv_rulebook(indices: Tensor, shape: tuple[int, int, int], kernel_size, stride,
                  padding) -> tuple[Rulebook, Tensor, tuple[int, int, int]]:
    """Strided rulebook. Returns (rulebook, output sites (M, 4), output spatial shape).

    Input ``c`` feeds output ``o`` through kernel position ``k`` when ``o * s - p + k = c``
    (dense conv3d indexing), solved per axis; output sites are sorted by their linear key.
    """
    kernel, s, p = triple(kernel_size), triple(stride), triple(padding)
    out_shape = conv_output_shape(shape, kernel, s, p)
    dev = indices.device
    n, n_k = indices.shape[0], kernel[0] * kernel[1] * kernel[2]
    outs, oks = [], []
    for ax in range(3):  # (N, k_ax) output coordinate and validity along each axis
        num = indices[:, 1 + ax, None] + p[ax] - torch.arange(kernel[ax], device=dev)[None]
        o = torch.div(num, s[ax], rounding_mode="floor")
        outs.append(o)
        oks.append((num - o * s[ax] == 0) & (o >= 0) & (o < out_shape[ax]))
    valid = (oks[0][:, :, None, None] & oks[1][:, None, :, None] & oks[2][:, None, None, :]).reshape(n, n_k).t()
    zy = (indices[:, 0, None] * out_shape[0] + outs[0])[:, :, None] * out_shape[1] + outs[1][:, None, :]
    out_keys = (zy[:, :, :, None] * out_shape[2] + outs[2][:, None, None, :]).reshape(n, n_k).t()  # (K, N)
    uniq, inverse = torch.unique(out_keys[valid], sorted=True, return_inverse=True)
    counts = valid.sum(dim=1).tolist()
    in_idx = torch.arange(n, device=dev).expand(n_k, n)[valid]
    rb = Rulebook(in_idx, inverse, _segments(list(range(n_k)), counts), int(uniq.numel()), n, n_k)
    return rb, keys_to_indices(uniq, out_shape), out_shape
