"""prroi_pool_max_levels: the maximum over pyramid levels of PrRoIPool, with the
gradients of autograd through ``torch.maximum`` and a fraction of its memory.

References: per-level ``prroi_pool`` merged by ``torch.maximum`` (forward and
both gradients), finite differences (gradcheck) and the bytes autograd saves."""
from functools import reduce

import pytest
import torch

from gan_mask_rcnn.ops import prroi_pool, prroi_pool_max_levels

SCALES = [1 / 4, 1 / 8, 1 / 16]


def _inputs(channels=3, size=96, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    feats = [torch.randn(2, channels, int(size * s), int(size * s), generator=gen,
                         dtype=dtype) for s in SCALES]
    rois = torch.tensor([[0, 3.0, 5.5, 40.0, 30.0], [1, 10.0, 12.0, 90.0, 70.0],
                         [0, 50.25, 20.0, 60.0, 94.0]], dtype=dtype)
    return feats, rois


def _reference(feats, rois, size):
    return reduce(torch.maximum, [prroi_pool(f, rois, size, s)
                                  for f, s in zip(feats, SCALES)])


# 19 channels: the kernels' eight-channel blocks and their remainder
@pytest.mark.parametrize('channels', [3, 19])
def test_forward_equals_per_level_maximum(channels):
    feats, rois = _inputs(channels=channels, dtype=torch.float32)
    # same bin weights, another summation order (all channels of a bin at once):
    # float32 rounding apart
    torch.testing.assert_close(prroi_pool_max_levels(feats, rois, (5, 7), SCALES),
                               _reference(feats, rois, (5, 7)), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('channels', [3, 19])
def test_gradients_equal_autograd_through_maximum(channels):
    feats, rois = _inputs(channels=channels)
    grads = []
    for fn in (lambda f, r: prroi_pool_max_levels(f, r, 6, SCALES),
               lambda f, r: _reference(f, r, 6)):
        f = [x.clone().requires_grad_() for x in feats]
        r = rois.clone().requires_grad_()
        weight = torch.randn(3, channels, 6, 6,
                             generator=torch.Generator().manual_seed(1),
                             dtype=torch.float64)
        (fn(f, r) * weight).sum().backward()
        grads.append([r.grad] + [x.grad for x in f])
    for ours, ref in zip(*grads):
        torch.testing.assert_close(ours, ref)
    assert grads[0][0][:, 1:].abs().sum() > 0  # the coordinates get a gradient


def test_layouts_of_output_and_gradient():
    """CPU output is channels-last (the discriminators' fast layout); the RoI
    gradient is the reference's for an output gradient in any layout."""
    feats, rois = _inputs(channels=4)
    rois.requires_grad_()
    out = prroi_pool_max_levels(feats, rois, 5, SCALES)
    assert out.is_contiguous(memory_format=torch.channels_last)
    ref_out = _reference(feats, rois, 5)
    weight = torch.randn(out.shape, generator=torch.Generator().manual_seed(3),
                         dtype=torch.float64)
    expected, = torch.autograd.grad(ref_out, rois, weight)
    strided = torch.empty(5, 5, 3, 4, 2, dtype=torch.float64)[..., 0].permute(2, 3, 0, 1)
    strided.copy_(weight)
    assert not strided.is_contiguous() and not strided.is_contiguous(
        memory_format=torch.channels_last)
    for grad in (weight, weight.contiguous(memory_format=torch.channels_last), strided):
        ours, = torch.autograd.grad(out, rois, grad, retain_graph=True)
        torch.testing.assert_close(ours, expected)


def test_channels_last_levels_give_the_same_values_and_gradients():
    """Levels may come channels-last (the CPU kernels read them in place, a caller
    pooling the same levels several times can convert them once): same result."""
    feats, rois = _inputs(channels=11)
    weight = torch.randn(3, 11, 6, 6, generator=torch.Generator().manual_seed(4),
                         dtype=torch.float64)
    results = []
    for layout in (torch.contiguous_format, torch.channels_last):
        r = rois.clone().requires_grad_()
        f = [x.detach().contiguous(memory_format=layout).requires_grad_()
             for x in feats]
        out = prroi_pool_max_levels(f, r, 6, SCALES)
        (out * weight).sum().backward()
        results.append([out, r.grad] + [x.grad for x in f])
    for ours, ref in zip(*results):
        torch.testing.assert_close(ours, ref, rtol=0, atol=0)


def _saved_bytes(fn, feats, rois):
    """Bytes of the distinct tensors autograd keeps for backward beyond the inputs
    and the output (which the caller holds anyway), and the output's bytes."""
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t,
                                                  lambda t: t):
        out = fn(feats, rois)
    held = {t.data_ptr() for t in feats + [rois, out]}
    extra = {t.data_ptr(): t.numel() * t.element_size() for t in saved
             if t.data_ptr() not in held}
    return sum(extra.values()), out.numel() * out.element_size()


def test_keeps_one_byte_per_output_element_instead_of_every_level():
    feats, rois = _inputs(channels=8, dtype=torch.float32)
    rois.requires_grad_()
    ours, out_bytes = _saved_bytes(lambda f, r: prroi_pool_max_levels(f, r, 28, SCALES),
                                   feats, rois)
    ref, _ = _saved_bytes(lambda f, r: _reference(f, r, 28), feats, rois)
    assert ours == out_bytes // 4  # the uint8 level index
    # torch.maximum keeps every level's output and every intermediate maximum
    assert ref >= (2 * len(SCALES) - 2) * out_bytes


def test_bad_input_is_named():
    feats, rois = _inputs(dtype=torch.float32)
    with pytest.raises(ValueError, match='one spatial scale per level'):
        prroi_pool_max_levels(feats, rois, 7, SCALES[:2])
    with pytest.raises(ValueError, match='same \\(N, C\\)'):
        prroi_pool_max_levels([feats[0], feats[1][:, :2]], rois, 7, SCALES[:2])
    with pytest.raises(ValueError, match='output_size'):
        prroi_pool_max_levels(feats, rois, 0, SCALES)
    with pytest.raises(ValueError, match='rois must be'):
        prroi_pool_max_levels(feats, rois[:, :4], 7, SCALES)


def test_nan_and_degenerate_rois_merge_like_torch_maximum():
    feats, _ = _inputs(dtype=torch.float32)
    feats[1][0, 1, 3, 4] = float('nan')  # NaN on a later level must win, as in maximum
    rois = torch.tensor([[0, 3.0, 5.5, 40.0, 30.0], [0, 10.0, 10.0, 10.0, 30.0],
                         [1, float('nan'), 1.0, 5.0, 5.0], [0, -50.0, -50.0, -20.0, -5.0]])
    out = prroi_pool_max_levels(feats, rois, 7, SCALES)
    torch.testing.assert_close(out, _reference(feats, rois, 7), rtol=1e-6, atol=1e-6,
                               equal_nan=True)
    assert out[0, 1].isnan().any() and not out[0, [0, 2]].isnan().any()
    assert (out[1] == 0).all() and out[2].isnan().all() and (out[3] == 0).all()


def test_kernel_checks_are_named():
    feats, rois = _inputs(dtype=torch.float32)
    op = torch.ops.gan_mask_rcnn.prroi_pool_max_levels
    with pytest.raises(RuntimeError, match='one spatial scale per level'):
        op(feats, rois, 7, 7, SCALES[:2])
    with pytest.raises(RuntimeError, match='1 to 255 levels'):
        op([], rois, 7, 7, [])
    with pytest.raises(RuntimeError, match='the \\(N, C\\) of the first'):
        op([feats[0], feats[1][:, :2]], rois, 7, 7, SCALES[:2])
    with pytest.raises(RuntimeError, match='every level must be Float'):
        op([feats[0], feats[1].double()], rois, 7, 7, SCALES[:2])


DEVICES = ['cpu', pytest.param('cuda', marks=[
    pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason='no GPU')])]


def _roi_grad(fn, feats, rois, grad_out):
    r = rois.clone().requires_grad_()
    fn(feats, r).backward(grad_out)
    return r.grad


@pytest.mark.parametrize('device', DEVICES)
def test_zero_gradient_elements_add_nothing_to_the_coordinates(device):
    """The max-levels coordinate kernel skips zero-gradient elements; the result
    must equal autograd through torch.maximum with the same output gradient, and
    the op with those zeros replaced by 1e-300 (no element skipped)."""
    feats, rois = _inputs()
    feats, rois = [f.to(device) for f in feats], rois.to(device)
    mask = (torch.rand(3, 3, 6, 6, generator=torch.Generator().manual_seed(2)) > 0.7
            ).double().to(device)
    ours = _roi_grad(lambda f, r: prroi_pool_max_levels(f, r, 6, SCALES), feats, rois,
                     mask)
    tiny = _roi_grad(lambda f, r: prroi_pool_max_levels(f, r, 6, SCALES), feats, rois,
                     torch.where(mask > 0, 1.0, 1e-300))
    ref = _roi_grad(lambda f, r: _reference(f, r, 6), feats, rois, mask)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ours, tiny, rtol=1e-12, atol=1e-12)
    assert ours[:, 1:].abs().min() > 0


@pytest.mark.parametrize('device', DEVICES)
def test_non_finite_and_empty_rois_in_the_coordinate_gradient(device):
    """A RoI with a non-finite corner gets a NaN coordinate gradient and an empty
    one a zero gradient, whatever the output gradient; the other RoIs get the
    gradient they get alone (autograd through torch.maximum)."""
    feats, rois = _inputs()
    bad = torch.tensor([[0, 5.0, float('inf'), 20.0, 30.0], [1, 8.0, 9.0, 8.0, 40.0]],
                       dtype=torch.float64)
    all_rois = torch.cat([rois[:1], bad, rois[1:]]).to(device)
    feats = [f.to(device) for f in feats]
    grad_out = torch.randn(5, 3, 4, 4, generator=torch.Generator().manual_seed(3),
                           dtype=torch.float64).to(device)
    grad_out[1] = 0  # the NaN must not depend on the output gradient
    ours = _roi_grad(lambda f, r: prroi_pool_max_levels(f, r, 4, SCALES), feats,
                     all_rois, grad_out)
    assert ours[1, 1:].isnan().all() and (ours[2] == 0).all()
    good = [0, 3, 4]
    ref = _roi_grad(lambda f, r: _reference(f, r, 4), feats, all_rois[good],
                    grad_out[good])
    torch.testing.assert_close(ours[good], ref, rtol=1e-10, atol=1e-12)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason='no GPU')
@pytest.mark.parametrize('size', [7, 28])
def test_cuda_coordinate_gradient_over_many_block_slices(size):
    """64 channels at 28 x 28 is 50,176 elements per RoI, 25 of the kernel's
    per-block slices: the block sums must add up to the float64 CPU gradient."""
    feats, rois = _inputs(channels=64, size=256)
    gen = torch.Generator().manual_seed(4)
    grad_out = torch.randn(3, 64, size, size, generator=gen, dtype=torch.float64)
    grads = [_roi_grad(lambda f, r: prroi_pool_max_levels(f, r, size, SCALES),
                       [f.to(device) for f in feats], rois.to(device),
                       grad_out.to(device)).cpu() for device in ('cpu', 'cuda')]
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-9, atol=1e-9)
    grads32 = _roi_grad(lambda f, r: prroi_pool_max_levels(f, r, size, SCALES),
                        [f.float().cuda() for f in feats], rois.float().cuda(),
                        grad_out.float().cuda()).cpu()
    torch.testing.assert_close(grads32.double(), grads[0], rtol=1e-3,
                               atol=1e-3 * grads[0].abs().max().item())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason='no GPU')
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_cuda_matches_cpu(dtype):
    feats, rois = _inputs(channels=4, dtype=dtype)
    feats[2][1, 0, 2, 2] = float('nan')
    outs, grads = [], []
    for device in ('cpu', 'cuda'):
        f = [x.to(device).requires_grad_() for x in feats]
        r = rois.to(device).requires_grad_()
        out = prroi_pool_max_levels(f, r, 7, SCALES)
        out.nan_to_num().sum().backward()
        outs.append(out.cpu())
        grads.append([r.grad.cpu()] + [x.grad.cpu() for x in f])
    torch.testing.assert_close(outs[1], outs[0], equal_nan=True)
    for gpu, cpu in zip(grads[1], grads[0]):
        torch.testing.assert_close(gpu, cpu, equal_nan=True)
