"""Pure-PyTorch reference of Precise RoI Pooling by numerical integration.

Slow and obviously correct, for tests and benchmarks of the compiled op: the
bilinear surface through the feature map's grid points (zero outside the map)
is evaluated on a dense grid of midpoints inside every bin and averaged
(composite midpoint rule). It shares no code with the compiled kernels and is
differentiable (by autograd) in the features and the RoI coordinates.

Error bound: the surface is continuous and piecewise bilinear with unit cells,
so the midpoint rule is exact on sub-cells without a grid line; each crossed
grid line costs at most |slope jump| * h**2 / 8 per unit length. With
|features| <= M (slope jumps <= 4 M) and sample spacing h <= step, a bin of
extents bw, bh >= b_min is off by at most (1 + 1 / b_min) * M * step**2.
"""
import math
from functools import partial
from typing import Sequence, Union

import torch
from torch import Tensor


def bilinear_surface(plane: Tensor, ys: Tensor, xs: Tensor) -> Tensor:
    """Bilinear surface of ``plane`` on the grid ``ys`` x ``xs``.

    Args:
        plane (Tensor): (C, H, W) values at the integer grid points.
        ys (Tensor): (Ny,) row coordinates (feature-map pixels).
        xs (Tensor): (Nx,) column coordinates.

    Returns:
        Tensor: (C, Ny, Nx) surface values, zero beyond one pixel outside.
    """
    height, width = plane.shape[-2:]
    y0, x0 = ys.detach().floor(), xs.detach().floor()
    out = plane.new_zeros(plane.shape[0], ys.numel(), xs.numel())
    for dy in (0, 1):
        yi = y0 + dy
        wy = 1 - (ys - yi).abs()
        in_y = (yi >= 0) & (yi < height)
        for dx in (0, 1):
            xi = x0 + dx
            wx = 1 - (xs - xi).abs()
            in_x = (xi >= 0) & (xi < width)
            rows = plane[:, yi.clamp(0, height - 1).long()]
            vals = rows[:, :, xi.clamp(0, width - 1).long()]
            mask = (in_y[:, None] & in_x[None, :]).to(plane.dtype)
            out = out + vals * (wy[:, None] * wx[None, :] * mask)
    return out


def prroi_pool_reference(features: Tensor,
                         rois: Tensor,
                         output_size: Union[int, Sequence[int]],
                         spatial_scale: float = 1.0,
                         step: float = 0.05) -> Tensor:
    """Precise RoI Pooling by dense midpoint integration.

    Args:
        features (Tensor): (N, C, H, W) feature map.
        rois (Tensor): (K, 5) ``[batch_index, x1, y1, x2, y2]`` in input
            pixels.
        output_size (int | tuple[int, int]): (out_h, out_w) bins.
        spatial_scale (float): Feature-map pixels per input pixel.
        step (float): Largest spacing of the samples, feature-map pixels.

    Returns:
        Tensor: (K, C, out_h, out_w) bin averages (0 for empty bins).
    """
    out_h, out_w = (output_size, output_size) if isinstance(
        output_size, int) else output_size
    outputs = []
    for roi in rois:
        x1, y1, x2, y2 = roi[1:] * spatial_scale
        bw = (x2 - x1).clamp(min=0) / out_w
        bh = (y2 - y1).clamp(min=0) / out_h
        extents = (float(bw.detach()), float(bh.detach()))
        if extents[0] * extents[1] == 0:
            outputs.append(features.new_zeros(features.shape[1], out_h, out_w))
            continue
        n = max(1, math.ceil(max(extents) / step))
        arange = partial(torch.arange,
                         dtype=features.dtype,
                         device=features.device)
        frac = (arange(n) + 0.5) / n
        xs = x1 + bw * (arange(out_w)[:, None] + frac).flatten()
        ys = y1 + bh * (arange(out_h)[:, None] + frac).flatten()
        surface = bilinear_surface(features[int(roi[0].detach())], ys, xs)
        outputs.append(surface.view(-1, out_h, n, out_w, n).mean(dim=(2, 4)))
    if not outputs:
        return features.new_zeros(0, features.shape[1], out_h, out_w)
    return torch.stack(outputs)


def error_bound(rois, output_size: Union[int, Sequence[int]], spatial_scale: float,
                features: Tensor, step: float) -> float:
    """The module's bound on ``prroi_pool_reference``'s error for these RoIs: the
    smallest positive bin extent b_min gives ``(1 + 1 / b_min) * max|F| * step**2``.

    Args:
        rois (Sequence | Tensor): (K, 5) ``[batch_index, x1, y1, x2, y2]``.
        output_size (int | tuple[int, int]): (out_h, out_w) bins.
        spatial_scale (float): Feature-map pixels per input pixel.
        features (Tensor): The pooled features (any shape).
        step (float): The reference's sample spacing.
    """
    out_h, out_w = (output_size, output_size) if isinstance(output_size, int) else output_size
    rows = rois.tolist() if isinstance(rois, Tensor) else rois
    extents = [(r[3] - r[1]) * spatial_scale / out_w for r in rows] + \
        [(r[4] - r[2]) * spatial_scale / out_h for r in rows]
    b_min = min([e for e in extents if e > 0], default=1.0)
    return (1 + 1 / b_min) * features.abs().max().item() * step**2
