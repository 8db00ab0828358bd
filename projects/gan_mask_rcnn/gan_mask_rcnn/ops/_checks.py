"""Argument checks shared by the PrRoIPool entry points (``prroi_pool``,
``PrRoIPool``, ``prroi_pool_max_levels``): bad input raises ``ValueError`` naming
the argument before any kernel runs. The kernels repeat the checks they need
(``csrc/common/prroi_pool_checks.h``) for callers of ``torch.ops`` directly.
"""
import math
import numbers
from typing import Tuple

import torch
from torch import Tensor

_CPU_DTYPES = (torch.float32, torch.float64)
_CUDA_DTYPES = _CPU_DTYPES + (torch.float16, torch.bfloat16)
_AUTOCAST_DTYPES = (torch.float16, torch.bfloat16)


def check_output_size(output_size) -> Tuple[int, int]:
    """``output_size`` as ``(out_h, out_w)`` of positive ints."""
    if isinstance(output_size, int) and not isinstance(output_size, bool):
        size = (output_size, output_size)
    elif isinstance(output_size, (tuple, list)):
        size = tuple(output_size)
    else:
        size = ()
    if len(size) != 2 or not all(
            isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size):
        raise ValueError(
            f'output_size must be a positive int or (h, w), got {output_size!r}')
    return size


def compute_dtype(tensor: Tensor) -> torch.dtype:
    """The dtype the kernels see: float32 for 16-bit floats under autocast
    on the tensor's device (the ops' Autocast kernels cast them), else its own."""
    if tensor.dtype in _AUTOCAST_DTYPES and torch.is_autocast_enabled(tensor.device.type):
        return torch.float32
    return tensor.dtype


def check_inputs(features: Tensor, rois: Tensor, spatial_scale: float) -> None:
    """Check ``features`` (N, C, H, W), ``rois`` (K, 5) and ``spatial_scale``;
    the batch index is ``check_batch_index``'s (once per call: it reads the RoIs)."""
    if not isinstance(features, Tensor) or features.dim() != 4:
        shape = tuple(features.shape) if isinstance(features, Tensor) else type(features)
        raise ValueError(f'features must be (N, C, H, W), got shape {shape}')
    if not isinstance(rois, Tensor) or rois.dim() != 2 or rois.shape[1] != 5:
        shape = tuple(rois.shape) if isinstance(rois, Tensor) else type(rois)
        raise ValueError(f'rois must be (K, 5), got shape {shape}')
    if features.device != rois.device:
        raise ValueError('features and rois must be on one device, got '
                         f'{features.device} and {rois.device}')
    feat_dtype, roi_dtype = compute_dtype(features), compute_dtype(rois)
    if feat_dtype != roi_dtype:
        raise ValueError('features and rois must have one dtype (or be cast to '
                         f'float32 by torch.autocast), got {features.dtype} and '
                         f'{rois.dtype}')
    dtypes = _CUDA_DTYPES if features.is_cuda else _CPU_DTYPES
    if feat_dtype not in dtypes:
        raise ValueError(f'features dtype must be one of {dtypes} on '
                         f'{features.device.type} (or float16/bfloat16 under '
                         f'torch.autocast), got {features.dtype}')
    if not (isinstance(spatial_scale, numbers.Real)
            and math.isfinite(spatial_scale) and spatial_scale > 0):
        raise ValueError(
            f'spatial_scale must be positive and finite, got {spatial_scale!r}')


def check_batch_index(rois: Tensor, batch_size: int) -> None:
    """Every ``rois[k, 0]`` must truncate to a batch index in [0, batch_size).

    Checked here, before any kernel runs, so a bad index never reaches
    compiled code (on torch 2.11 + CUDA a C++ error from that path once ended
    the interpreter). Costs one device-to-host copy of a flag for CUDA RoIs;
    skipped while ``torch.compile`` traces (the kernels check again).
    """
    if rois.device.type == 'meta' or rois.numel() == 0 or torch.compiler.is_compiling():
        return
    index = rois[:, 0]
    bad = ~((index > -1) & (index < batch_size))  # NaN is bad too
    if bool(bad.any()):
        k = int(bad.nonzero()[0, 0])
        raise ValueError(f'rois[{k}, 0] (batch index) must be in [0, {batch_size}), '
                         f'got {index[k].item():g} (features have batch size '
                         f'{batch_size})')


def fake_check_inputs(features_shape, dtype, device, rois: Tensor, pooled_height: int,
                      pooled_width: int) -> None:
    """The C++ kernels' shape, dtype and device checks (``prroi_check_inputs``), for
    the fake kernels: ``torch.compile`` and ``opcheck`` meet the same errors."""
    torch._check(len(features_shape) == 4,
                 lambda: f'prroi_pool: features must be (N, C, H, W), got {features_shape}')
    torch._check(rois.dim() == 2 and rois.shape[1] == 5,
                 lambda: f'prroi_pool: rois must be (K, 5), got {tuple(rois.shape)}')
    torch._check(rois.dtype == dtype and rois.device == device,
                 lambda: f'prroi_pool: features and rois must have one dtype and device, '
                         f'got {dtype} on {device} and {rois.dtype} on {rois.device}')
    torch._check(dtype.is_floating_point,
                 lambda: f'prroi_pool: features must be floating point, got {dtype}')
    torch._check(pooled_height > 0 and pooled_width > 0,
                 lambda: f'prroi_pool: output_size must be positive, got '
                         f'({pooled_height}, {pooled_width})')


def fake_check_pooled(tensor: Tensor, name: str, shape, dtype, device) -> None:
    """``tensor`` must be ``shape`` (K, C, PH, PW) of ``dtype`` on ``device``."""
    torch._check(tuple(tensor.shape) == tuple(shape),
                 lambda: f'prroi_pool: {name} must have shape {tuple(shape)}, '
                         f'got {tuple(tensor.shape)}')
    torch._check(tensor.dtype == dtype and tensor.device == device,
                 lambda: f'prroi_pool: {name} must be {dtype} on {device}, got '
                         f'{tensor.dtype} on {tensor.device}')
