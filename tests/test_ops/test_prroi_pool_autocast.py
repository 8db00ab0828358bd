"""PrRoIPool under ``torch.autocast``: the RoIs stay float32.

bfloat16 has 8 significant bits, so between 1024 and 2048 px it rounds a box
corner to a multiple of 8 px. The ops' Autocast kernels cast features and RoIs
to float32 instead (torchvision's ``roi_align`` pattern) and return the
features' dtype. References: dense midpoint integration of the bilinear surface
(``prroi_pool_reference``) in float64 on the same bfloat16-valued features and
the exact RoIs; for the RoI gradient, central finite differences.
"""
import pytest
import torch

from gan_mask_rcnn.ops import prroi_pool, prroi_pool_max_levels
from prroi_pool_reference import prroi_pool_reference

SCALES = (1 / 16, 1 / 32)
STEP = 0.02  # reference sample spacing, feature-map pixels
# Image-pixel RoIs between 1024 and 2048 px whose corners bfloat16 moves.
ROIS = [[0, 1027.0, 1101.0, 1389.0, 1355.0], [1, 1500.5, 1030.0, 2043.0, 1203.0],
        [0, 1283.0, 1620.0, 1501.0, 1990.0]]

DEVICES = [
    ('cpu', torch.bfloat16),
    pytest.param('cuda', torch.float16, marks=[
        pytest.mark.cuda,
        pytest.mark.skipif(not torch.cuda.is_available(), reason='no GPU')]),
    pytest.param('cuda', torch.bfloat16, marks=[
        pytest.mark.cuda,
        pytest.mark.skipif(not torch.cuda.is_available(), reason='no GPU')]),
]


def _levels(device, dtype):
    """Two levels (2, 3, H, W) of a 2560 x 2560 image, 16-bit values."""
    gen = torch.Generator().manual_seed(0)
    return [(torch.rand(2, 3, int(2560 * s), int(2560 * s), generator=gen) * 2 - 1).to(
        device=device, dtype=dtype) for s in SCALES]


def _rois(device):
    rois = torch.tensor(ROIS, device=device)
    moved = (rois[:, 1:].to(torch.bfloat16).float() - rois[:, 1:]).abs()
    assert moved.max() >= 2, 'the RoIs must be ones that bfloat16 rounds'
    return rois


def _reference(feat, rois, scale):
    return prroi_pool_reference(feat.double().cpu(), rois.double().cpu(), 7, scale,
                                step=STEP)


@pytest.mark.parametrize('device,dtype', DEVICES)
def test_prroi_pool_keeps_float32_rois(device, dtype):
    feat, rois = _levels(device, dtype)[1], _rois(device)
    with torch.autocast(device, dtype=dtype):
        out = prroi_pool(feat, rois, 7, SCALES[1])
    assert out.dtype == dtype
    ref = _reference(feat, rois, SCALES[1])
    rounded = _reference(feat, rois.to(dtype), SCALES[1])
    err = (out.double().cpu() - ref).abs().max().item()
    err_rounded = (rounded - ref).abs().max().item()
    # bfloat16 output rounding (2^-9 relative, |values| <= 1) + reference bound
    assert err < 4e-3, err
    assert err_rounded > 5 * err, (err, err_rounded)


@pytest.mark.parametrize('device,dtype', DEVICES)
def test_roi_gradient_under_autocast(device, dtype):
    feat, rois = _levels(device, dtype)[1], _rois(device)
    weight = torch.linspace(-1, 1, 3 * 7 * 7, device=device).reshape(1, 3, 7, 7)
    rois.requires_grad_()
    with torch.autocast(device, dtype=dtype):
        out = prroi_pool(feat, rois, 7, SCALES[1])
    (out.float() * weight).sum().backward()
    assert rois.grad.dtype == torch.float32

    feat64, rois64 = feat.double().cpu(), rois.detach().double().cpu()

    def loss(r):
        return (prroi_pool(feat64, r, 7, SCALES[1]) * weight.double().cpu()).sum()

    h = 1e-3
    numeric = torch.zeros_like(rois64)
    for k in range(rois64.shape[0]):
        for j in range(1, 5):
            plus, minus = rois64.clone(), rois64.clone()
            plus[k, j] += h
            minus[k, j] -= h
            numeric[k, j] = (loss(plus) - loss(minus)) / (2 * h)
    scale = numeric.abs().max().item()
    assert (rois.grad.double().cpu() - numeric).abs().max().item() < 0.02 * scale


@pytest.mark.parametrize('device,dtype', DEVICES)
def test_max_levels_keeps_float32_rois(device, dtype):
    feats, rois = _levels(device, dtype), _rois(device)
    with torch.autocast(device, dtype=dtype):
        out = prroi_pool_max_levels(feats, rois, 7, SCALES)
    assert out.dtype == dtype
    ref = torch.maximum(*[_reference(f, rois, s) for f, s in zip(feats, SCALES)])
    err = (out.double().cpu() - ref).abs().max().item()
    assert err < 4e-3, err


def test_bfloat16_without_autocast_still_refused_on_cpu():
    feat, rois = _levels('cpu', torch.bfloat16)[1], _rois('cpu')
    with pytest.raises(ValueError, match='features dtype must be one of'):
        prroi_pool(feat, rois.bfloat16(), 7, SCALES[1])
