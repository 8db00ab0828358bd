"""One tester for both PrRoIPool ops over device x dtype, in the shape of
torchvision's ``RoIOpTester`` (``test/test_ops.py``): each op names its call
(``fn``) and an independent float64 reference (``expected_fn``); the tester checks
the forward against it, the gradients by finite differences (gradcheck), empty RoI
sets, ``torch.library.opcheck`` and the fake kernels' shape and dtype checks.

References: ``prroi_pool``: numerical integration of the bilinear surface
(``prroi_pool_reference``); ``prroi_pool_max_levels``: ``torch.maximum`` over the
per-level references. Op-specific behaviour stays in ``test_prroi_pool.py`` and
``test_prroi_pool_max_levels.py``.
"""
from functools import reduce

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from gan_mask_rcnn.ops import prroi_pool, prroi_pool_max_levels
from prroi_pool_reference import error_bound, prroi_pool_reference

CUDA = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason='no GPU')]
DEVICE_DTYPES = [('cpu', torch.float32), ('cpu', torch.float64)] + [
    pytest.param('cuda', dtype, marks=CUDA)
    for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16)]
DEVICES = ['cpu', pytest.param('cuda', marks=CUDA)]
STEP = 0.01  # reference sample spacing, feature-map pixels
# forward tolerance beyond the reference's bound, per dtype (output rounding)
ROUNDING = {torch.float64: 0.0, torch.float32: 1e-5, torch.float16: 2e-3,
            torch.bfloat16: 1.6e-2}
# [b, x1, y1, x2, y2] in image pixels: interior, partly outside, past the far edge,
# zero width, grid points; off every level's grid points for the gradient
ROIS = [[0, 4.6, 3.4, 17.8, 14.4], [1, -6.2, 1.3, 9.1, 30.7], [0, 15.5, 11.5, 28.0, 22.0],
        [1, 6.0, 4.0, 6.0, 12.0], [0, 4.0, 2.0, 12.0, 10.0]]
GRAD_ROIS = [[0, 4.6, 3.4, 17.8, 14.4], [1, -6.2, 1.3, 9.1, 30.7],
             [0, 15.5, 11.7, 27.3, 21.9]]


def _features(shape, dtype, device, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1).to(device, dtype)


class RoIOpTester:
    """Tests shared by the PrRoIPool ops; a subclass gives ``make_features``,
    ``fn`` and ``expected_fn``."""
    output_size = (2, 3)

    def make_features(self, dtype, device):
        raise NotImplementedError

    def fn(self, features, rois):
        raise NotImplementedError

    def expected_fn(self, features, rois):
        """The float64 reference on the CPU, and its error bound."""
        raise NotImplementedError

    @pytest.mark.parametrize('device,dtype', DEVICE_DTYPES)
    def test_forward(self, device, dtype):
        feats = self.make_features(dtype, device)
        rois = torch.tensor(ROIS, dtype=dtype, device=device)
        out = self.fn(feats, rois)
        ref, atol = self.expected_fn(self._cpu64(feats), rois.double().cpu())
        assert out.dtype == dtype and out.device.type == device and out.shape == ref.shape
        torch.testing.assert_close(out.double().cpu(), ref, rtol=0, atol=atol + ROUNDING[dtype])

    @pytest.mark.parametrize('device', DEVICES)
    def test_backward(self, device):
        feats = self.make_features(torch.float64, device)
        rois = torch.tensor(GRAD_ROIS, dtype=torch.float64, device=device)
        index, coords = rois[:, :1], rois[:, 1:].clone()  # an index has no derivative
        leaves = [f.requires_grad_() for f in self._as_list(feats)]
        assert torch.autograd.gradcheck(
            lambda c, *f: self.fn(self._from_list(f), torch.cat([index, c], 1)),
            (coords.requires_grad_(), *leaves), eps=1e-6, atol=1e-6)

    @pytest.mark.parametrize('device', DEVICES)
    def test_empty_rois(self, device):
        feats = [f.requires_grad_() for f in self._as_list(
            self.make_features(torch.float32, device))]
        rois = torch.zeros(0, 5, device=device, requires_grad=True)
        out = self.fn(self._from_list(feats), rois)
        assert out.shape == (0, 3, *self.output_size)
        out.sum().backward()
        assert all(torch.count_nonzero(f.grad) == 0 for f in feats)
        assert rois.grad.shape == (0, 5)

    @pytest.mark.parametrize('device', DEVICES)
    def test_opcheck(self, device):
        feats = self.make_features(torch.float64, device)
        rois = torch.tensor(GRAD_ROIS, dtype=torch.float64, device=device)
        op, args = self.op_call(feats, rois)
        torch.library.opcheck(op, args)

    def test_fake_kernel_checks_shapes_and_dtypes(self):
        with FakeTensorMode():
            feats = self.make_features(torch.float32, 'cpu')
            rois = torch.empty(4, 5)
            op, args = self.op_call(feats, rois[:, :4])
            with pytest.raises(RuntimeError, match=r'rois must be \(K, 5\)'):
                op(*args)
            op, args = self.op_call(feats, rois.double())
            with pytest.raises(RuntimeError, match='one dtype and device'):
                op(*args)

    @staticmethod
    def _as_list(feats):
        return list(feats) if isinstance(feats, (list, tuple)) else [feats]

    def _from_list(self, feats):
        return feats[0] if len(feats) == 1 and not self.levels else list(feats)

    def _cpu64(self, feats):
        return self._from_list([f.double().cpu() for f in self._as_list(feats)])


class TestPrRoIPool(RoIOpTester):
    levels = False
    scale = 0.5

    def make_features(self, dtype, device):
        return _features((2, 3, 9, 11), dtype, device)

    def fn(self, features, rois):
        return prroi_pool(features, rois, self.output_size, self.scale)

    def op_call(self, features, rois):
        return (torch.ops.gan_mask_rcnn.prroi_pool.default,
                (features, rois, *self.output_size, self.scale))

    def expected_fn(self, features, rois):
        ref = prroi_pool_reference(features, rois, self.output_size, self.scale, step=STEP)
        return ref, error_bound(rois, self.output_size, self.scale, features, STEP)


class TestPrRoIPoolMaxLevels(RoIOpTester):
    levels = True
    scales = [1 / 2, 1 / 4]

    def make_features(self, dtype, device):
        return [_features((2, 3, 18, 22), dtype, device, seed=0),
                _features((2, 3, 9, 11), dtype, device, seed=1)]

    def fn(self, features, rois):
        return prroi_pool_max_levels(features, rois, self.output_size, self.scales)

    def op_call(self, features, rois):
        return (torch.ops.gan_mask_rcnn.prroi_pool_max_levels.default,
                (features, rois, *self.output_size, self.scales))

    def expected_fn(self, features, rois):
        refs = [prroi_pool_reference(f, rois, self.output_size, s, step=STEP)
                for f, s in zip(features, self.scales)]
        bound = max(error_bound(rois, self.output_size, s, f, STEP)
                    for f, s in zip(features, self.scales))
        return reduce(torch.maximum, refs), bound

