"""Sparse 3D convolution in plain PyTorch (CPU and CUDA, autograd-correct).

A rulebook built by sorting linearised coordinates (:mod:`sckd.ops.rulebook`) lists the
(input, output) pairs of every kernel offset. A layer gathers the input rows of a chunk of
pairs (one ``index_select``), multiplies each offset's block by that offset's ``(Cin, Cout)``
weight slice, and scatter-adds the products into the output rows (one ``index_add_``); the
submanifold centre offset is a plain matmul. Backward runs the same rulebook reversed. The
custom autograd function keeps only the input features, the weight and the rulebook.

Weight layout: ``(Cout, kD, kH, kW, Cin)`` — spconv 2.x's default layout, so a dense
``conv3d`` weight ``w`` (Cout, Cin, kD, kH, kW) maps to ``w.permute(0, 2, 3, 4, 1)``. The
result equals dense ``conv3d`` with the same stride and padding (inactive sites = 0),
evaluated at the output sites. spconv itself is not used (its CPU build has no backward).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor, nn

from sckd.ops.rulebook import Rulebook, triple, conv_rulebook, subm_rulebook


@dataclass
class SparseTensor:
    """Active voxels of a batch: features ``(N, C)`` at sites ``(N, 4)`` int64 ``[b, z, y, x]``."""

    features: Tensor
    indices: Tensor
    spatial_shape: tuple[int, int, int]
    """(D, H, W) = (nz, ny, nx) grid cells."""
    batch_size: int
    rulebooks: dict[str, Rulebook] = field(default_factory=dict)
    """Submanifold rulebooks shared by layers with the same ``indice_key`` (same sites)."""

    def replace_feature(self, features: Tensor) -> "SparseTensor":
        return replace(self, features=features)

    def dense(self) -> Tensor:
        """(B, C, D, H, W) dense tensor, zeros at inactive sites (differentiable)."""
        d, h, w = self.spatial_shape
        c = self.features.shape[1]
        flat = self.features.new_zeros(self.batch_size * d * h * w, c)
        i = self.indices
        flat = flat.index_copy(0, ((i[:, 0] * d + i[:, 1]) * h + i[:, 2]) * w + i[:, 3], self.features)
        return flat.view(self.batch_size, d, h, w, c).permute(0, 4, 1, 2, 3).contiguous()


# Under CUDA mixed precision the sparse convs run in float32 (inputs cast on entry).
_fp32_under_autocast = torch.amp.custom_fwd(device_type="cuda", cast_inputs=torch.float32)
_same_autocast_in_backward = torch.amp.custom_bwd(device_type="cuda")


CHUNK_ROWS = 1 << 15
"""Pairs are processed in chunks of about this many rows: the gathered blocks stay in cache
and below the allocator's mmap threshold (a fresh mmap per op costs a page fault per 4 KiB)."""


def _chunks(segments: list[tuple[int, int, int]]) -> list[list[tuple[int, int, int]]]:
    """Group consecutive (k, start, stop) segments into runs of about ``CHUNK_ROWS`` pairs,
    splitting long segments."""
    out: list[list[tuple[int, int, int]]] = [[]]
    size = 0
    for k, a, b in segments:
        while a < b:
            step = min(b - a, max(CHUNK_ROWS - size, 1))
            out[-1].append((k, a, a + step))
            size += step
            a += step
            if size >= CHUNK_ROWS:
                out.append([])
                size = 0
    return [c for c in out if c]


def _gather_mm_scatter(src: Tensor, weight: Tensor, src_idx: Tensor, dst_idx: Tensor, dst: Tensor,
                       segments: list[tuple[int, int, int]]) -> None:
    """dst[dst_idx[p]] += src[src_idx[p]] @ weight[k] for every pair p of every segment."""
    for chunk in _chunks(segments):
        a0, b0 = chunk[0][1], chunk[-1][2]
        x = src.index_select(0, src_idx[a0:b0])
        y = x.new_empty(b0 - a0, weight.shape[2])
        for k, a, b in chunk:
            torch.mm(x[a - a0:b - a0], weight[k], out=y[a - a0:b - a0])
        dst.index_add_(0, dst_idx[a0:b0], y)


class _GatherMatmulScatter(torch.autograd.Function):
    """out[o] += f[i] @ W[k] for the pairs (i, o) of each offset k. One gather and one scatter
    per chunk of pairs (not per offset): few large parallel ops beat many small ones."""

    @staticmethod
    @_fp32_under_autocast
    def forward(ctx, feats: Tensor, weight: Tensor, rb: Rulebook) -> Tensor:  # weight (K, Cin, Cout)
        out = feats @ weight[rb.identity] if rb.identity >= 0 else feats.new_zeros(rb.n_out, weight.shape[2])
        _gather_mm_scatter(feats, weight, rb.in_idx, rb.out_idx, out, rb.segments)
        ctx.save_for_backward(feats, weight)
        ctx.rb = rb
        return out

    @staticmethod
    @_same_autocast_in_backward
    def backward(ctx, grad: Tensor):
        feats, weight = ctx.saved_tensors
        rb: Rulebook = ctx.rb
        grad = grad.contiguous()
        gf = gw = None
        if ctx.needs_input_grad[0]:  # the transposed conv: outputs feed inputs through W[k]^T
            gf = grad @ weight[rb.identity].t() if rb.identity >= 0 else torch.zeros_like(feats)
            _gather_mm_scatter(grad, weight.transpose(1, 2), rb.out_idx, rb.in_idx, gf, rb.segments)
        if ctx.needs_input_grad[1]:
            gw = torch.zeros_like(weight)
            if rb.identity >= 0:
                gw[rb.identity] = feats.t() @ grad
            for chunk in _chunks(rb.segments):
                a0, b0 = chunk[0][1], chunk[-1][2]
                x = feats.index_select(0, rb.in_idx[a0:b0])
                g = grad.index_select(0, rb.out_idx[a0:b0])
                for k, a, b in chunk:
                    gw[k].addmm_(x[a - a0:b - a0].t(), g[a - a0:b - a0])
        return gf, gw, None


def sparse_conv_features(feats: Tensor, weight: Tensor, rb: Rulebook) -> Tensor:
    """Apply a ``(Cout, kD, kH, kW, Cin)`` weight over a rulebook -> (n_out, Cout)."""
    cout, cin = weight.shape[0], weight.shape[-1]
    w = weight.reshape(cout, -1, cin).permute(1, 2, 0).contiguous()  # (K, Cin, Cout)
    return _GatherMatmulScatter.apply(feats.contiguous(), w, rb)


class _SparseConvBase(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size, bias: bool) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = triple(kernel_size)
        self.weight = nn.Parameter(torch.empty(out_channels, *self.kernel_size, in_channels))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # nn.Conv3d's default (kaiming uniform with a = sqrt(5) gives U(-1/sqrt(fan_in), +)).
        fan_in = self.in_channels * math.prod(self.kernel_size)
        bound = 1.0 / math.sqrt(fan_in)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def _apply_rb(self, x: SparseTensor, rb: Rulebook) -> Tensor:
        out = sparse_conv_features(x.features, self.weight, rb)
        return out + self.bias if self.bias is not None else out


class SubMConv3d(_SparseConvBase):
    """Submanifold conv: output sites = input sites, padding ``k // 2``, stride 1.

    Layers sharing ``indice_key`` reuse the rulebook stored on the tensor.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size=3, bias: bool = False,
                 indice_key: str | None = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, bias)
        self.indice_key = indice_key

    def forward(self, x: SparseTensor) -> SparseTensor:
        key = f"{self.indice_key}:{self.kernel_size}" if self.indice_key else None
        rb = x.rulebooks.get(key) if key else None
        if rb is None or rb.n_out != x.indices.shape[0]:
            rb = subm_rulebook(x.indices, x.spatial_shape, self.kernel_size)
            if key:
                x.rulebooks[key] = rb
        return x.replace_feature(self._apply_rb(x, rb))


class SparseConv3d(_SparseConvBase):
    """Strided sparse conv: output sites = dense-output cells reached by any active input."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size=3, stride=1, padding=0,
                 bias: bool = False) -> None:
        super().__init__(in_channels, out_channels, kernel_size, bias)
        self.stride, self.padding = triple(stride), triple(padding)

    def forward(self, x: SparseTensor) -> SparseTensor:
        rb, indices, shape = conv_rulebook(x.indices, x.spatial_shape, self.kernel_size,
                                           self.stride, self.padding)
        return SparseTensor(self._apply_rb(x, rb), indices, shape, x.batch_size)


class SparseSequential(nn.Sequential):
    """Runs sparse convs on the tensor and any other module (BN, ReLU) on its features."""

    def forward(self, x: SparseTensor) -> SparseTensor:  # type: ignore[override]
        for m in self:
            x = m(x) if isinstance(m, (_SparseConvBase, SparseSequential)) else x.replace_feature(m(x.features))
        return x
