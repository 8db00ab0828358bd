"""Tests of the PrRoIPool op against independent references.

Forward: dense midpoint integration of the bilinear surface
(``prroi_pool_reference``), with the tolerance from its error bound
``(1 + 1 / b_min) * max|F| * step**2`` (see that module). Gradients:
``torch.autograd.gradcheck`` (finite differences) in float64. Registration:
``torch.library.opcheck`` and ``torch.compile(fullgraph=True)``.
"""
import os
import os.path as osp
import shutil
import subprocess
import sysconfig

import pytest
import torch

from gan_mask_rcnn.ops import PrRoIPool, prroi_pool
from prroi_pool_reference import error_bound, prroi_pool_reference

DEVICES = [
    'cpu',
    pytest.param('cuda',
                 marks=[
                     pytest.mark.cuda,
                     pytest.mark.skipif(not torch.cuda.is_available(),
                                        reason='no GPU')
                 ]),
]
STEP = 0.01  # reference sample spacing, feature-map pixels
CSRC = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'projects',
                'gan_mask_rcnn', 'gan_mask_rcnn', 'ops', 'csrc')

# (rois [b, x1, y1, x2, y2] in image pixels, output size, spatial scale) on a
# (2, 3, 9, 11) map.
CASES = {
    'interior': ([[0, 2.3, 1.7, 8.9, 7.2]], (2, 3), 1.0),
    'partly_outside': ([[1, -3.5, -2.2, 4.1, 3.3]], (3, 2), 1.0),
    'past_far_edge': ([[0, 7.5, 5.5, 14.0, 11.0]], (2, 2), 1.0),
    'within_one_pixel_outside': ([[0, -0.9, -0.8, -0.1, -0.2]], 2, 1.0),
    'wholly_outside': ([[1, 20, 15, 25, 19], [0, -9, -8, -2.5, -1.5]], 2, 1.0),
    'zero_width': ([[0, 3, 2, 3, 6]], 2, 1.0),
    'zero_height': ([[1, 3, 2, 7, 2]], 2, 1.0),
    'inverted': ([[0, 7, 2, 3, 6]], 2, 1.0),
    'grid_points': ([[0, 2, 1, 6, 5], [1, 0, 0, 10, 8]], 2, 1.0),
    'subpixel_bins': ([[1, 3.2, 4.1, 3.5, 4.4]], 3, 1.0),
    'spatial_scale': ([[0, 4.6, 3.4, 17.8, 14.4], [1, -6, 1, 9,
                                                   30]], (3, 4), 0.5),
}


def _features(dtype, device, shape=(2, 3, 9, 11)):
    gen = torch.Generator().manual_seed(0)
    return (torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1).to(
        dtype=dtype, device=device)


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('case', list(CASES))
def test_forward_matches_numerical_integration(case, dtype, device):
    rois, output_size, scale = CASES[case]
    feats = _features(dtype, device)
    boxes = torch.tensor(rois, dtype=dtype, device=device)
    out = prroi_pool(feats, boxes, output_size, scale)
    ref = prroi_pool_reference(feats.double().cpu(),
                               boxes.double().cpu(),
                               output_size,
                               scale,
                               step=STEP)
    atol = error_bound(rois, output_size, scale, feats, STEP)
    atol += 1e-5 if dtype == torch.float32 else 0
    assert out.dtype == dtype and out.shape == ref.shape
    torch.testing.assert_close(out.double().cpu(), ref, rtol=0, atol=atol)


def test_outside_and_empty_bins_are_zero():
    feats = _features(torch.float64, 'cpu')
    for case in ('wholly_outside', 'zero_width', 'zero_height', 'inverted'):
        rois, output_size, scale = CASES[case]
        out = prroi_pool(feats, torch.tensor(rois, dtype=torch.float64),
                         output_size, scale)
        assert torch.count_nonzero(out) == 0, case


def test_constant_map_interior_average_is_the_constant():
    # A constant map's surface is that constant between its first and last
    # grid points (x in [0, W - 1], y in [0, H - 1]).
    feats = torch.full((1, 2, 6, 7), 3.5, dtype=torch.float64)
    rois = torch.tensor([[0, 0.0, 0.0, 6.0, 5.0], [0, 1.3, 0.2, 4.9, 3.7]],
                        dtype=torch.float64)
    out = prroi_pool(feats, rois, (4, 5))
    torch.testing.assert_close(out, torch.full_like(out, 3.5))


@pytest.mark.parametrize('device', DEVICES)
def test_non_contiguous_input(device):
    base = _features(torch.float64, device, shape=(2, 3, 11, 9))
    feats = base.transpose(2, 3)  # (2, 3, 9, 11), not contiguous
    wide = torch.zeros(2, 10, dtype=torch.float64, device=device)
    wide[:, ::2] = torch.tensor([[1, 0.7, 3.3, 5.2, 8.1],
                                 [0, -1.0, 1.5, 2.5, 7.5]])
    rois = wide[:, ::2]  # (2, 5) with stride 2
    assert not feats.is_contiguous() and not rois.is_contiguous()
    out = prroi_pool(feats, rois, (2, 3))
    ref = prroi_pool_reference(feats.cpu(), rois.cpu(), (2, 3), step=STEP)
    torch.testing.assert_close(out.cpu(), ref, rtol=0, atol=1e-3)


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('case', [
    'interior', 'partly_outside', 'past_far_edge', 'grid_points',
    'subpixel_bins', 'spatial_scale'
])
def test_gradcheck_features_and_rois(case, device):
    rois, output_size, scale = CASES[case]
    feats = _features(torch.float64, device, shape=(2, 2, 9, 11))
    boxes = torch.tensor(rois, dtype=torch.float64, device=device)
    index, coords = boxes[:, :1], boxes[:, 1:].clone()

    def fn(f, c):
        return prroi_pool(f, torch.cat([index, c], dim=1), output_size, scale)

    assert torch.autograd.gradcheck(
        fn, (feats.requires_grad_(), coords.requires_grad_()),
        eps=1e-6,
        atol=1e-6)


def test_roi_gradient_of_batch_index_is_zero():
    feats = _features(torch.float64, 'cpu')
    rois = torch.tensor([[1, 2.3, 1.7, 8.9, 7.2]],
                        dtype=torch.float64,
                        requires_grad=True)
    prroi_pool(feats, rois, 2).sum().backward()
    assert rois.grad[0, 0] == 0 and rois.grad[0, 1:].abs().sum() > 0


def test_float32_matches_float64():
    rois = torch.tensor(CASES['spatial_scale'][0])
    feats = _features(torch.float64, 'cpu', shape=(2, 4, 12, 13))
    out64 = prroi_pool(feats, rois.double(), 5, 0.5)
    out32 = prroi_pool(feats.float(), rois.float(), 5, 0.5)
    torch.testing.assert_close(out32.double(), out64, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    'backend',
    [
        'aot_eager',
        pytest.param('inductor',
                     marks=pytest.mark.slow),  # ~30 s of C++ builds
    ])
def test_torch_compile_fullgraph(backend):
    feats = _features(torch.float32, 'cpu').requires_grad_()
    rois = torch.tensor(CASES['spatial_scale'][0], requires_grad=True)

    def fn(f, r):
        return prroi_pool(f * 2, r, (3, 4), 0.5).square().sum()

    compiled = torch.compile(fn, fullgraph=True, backend=backend)
    loss = compiled(feats, rois)
    grads = torch.autograd.grad(loss, (feats, rois))
    ref_loss = fn(feats, rois)
    ref_grads = torch.autograd.grad(ref_loss, (feats, rois))
    torch.testing.assert_close(loss, ref_loss)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r)


def test_nan_features_propagate():
    feats = _features(torch.float32, 'cpu').requires_grad_()
    with torch.no_grad():
        feats[0, 1, 4, 5] = float('nan')
    rois = torch.tensor([[0, 3.0, 3.0, 8.0, 7.0], [0, 0.0, 0.0, 2.0, 2.0],
                         [1, 3.0, 3.0, 8.0, 7.0]],
                        requires_grad=True)
    out = prroi_pool(feats, rois, 2)
    assert out[0, 1].isnan().any() and not out[0, [0, 2]].isnan().any()
    assert not out[1:].isnan().any()
    out.sum().backward()
    assert feats.grad.isfinite().all()
    assert rois.grad[0].isnan().any() and rois.grad[1:].isfinite().all()


def test_non_finite_roi_pools_to_nan():
    feats = _features(torch.float32, 'cpu')
    rois = torch.tensor([[0, float('nan'), 1, 5, 5],
                         [0, 1, 1, float('inf'), 5], [0, 1, 1, 5, 5]])
    out = prroi_pool(feats, rois, 2)
    assert out[:2].isnan().all() and out[2].isfinite().all()


def test_extreme_coordinates_stay_in_bounds():
    feats = _features(torch.float32, 'cpu').requires_grad_()
    rois = torch.tensor([[0, -3e38, 0, 3e38, 5], [0, 1e30, 1e30, 2e30, 2e30],
                         [1, -1e30, -1e30, 1e30, 1e30], [1, -1e30, 2, 1e30, 4]],
                        requires_grad=True)
    out = prroi_pool(feats, rois, 3)
    assert out[0].isnan().all()  # the width overflows float32
    assert out[1].eq(0).all() and out[2:].isfinite().all()
    out[1:].sum().backward()
    assert feats.grad.isfinite().all() and rois.grad[1:].isfinite().all()


@pytest.mark.parametrize('rois, match', [
    (torch.zeros(3, 4), r'rois must be \(K, 5\), got shape \(3, 4\)'),
    (torch.zeros(5), r'rois must be \(K, 5\), got shape \(5,\)'),
    (torch.zeros(1, 5, dtype=torch.float64), 'one dtype.*float32.*float64'),
],
                         ids=['rois_width_4', 'rois_rank_1', 'rois_dtype'])
def test_bad_rois_raise(rois, match):
    with pytest.raises(ValueError, match=match):
        prroi_pool(torch.zeros(1, 2, 4, 4), rois, 2)


@pytest.mark.parametrize(
    'index', [-1.0, 2.0, float('nan')],
    ids=['batch_index_negative', 'batch_index_too_large', 'batch_index_nan'])
def test_batch_index_outside_batch_raises(index):
    rois = torch.tensor([[0, 0, 0, 2, 2], [index, 0, 0, 2, 2]])
    with pytest.raises(ValueError,
                       match=rf'rois\[1, 0\] \(batch index\) must be in '
                       rf'\[0, 2\), got {index:g}'.replace('nan', 'nan')):
        prroi_pool(torch.zeros(2, 1, 4, 4), rois, 2)


@pytest.mark.parametrize(
    'size', [0, -2, (2, 0), (2, 2, 2), 1.5],
    ids=['zero', 'negative', 'zero_width', 'three_dims', 'float'])
def test_bad_output_size_raises(size):
    with pytest.raises(ValueError, match='output_size must be a positive'):
        PrRoIPool(size)
    with pytest.raises(ValueError, match='output_size must be a positive'):
        prroi_pool(torch.zeros(1, 1, 4, 4), torch.zeros(1, 5), size)


def test_other_bad_inputs_raise():
    rois = torch.zeros(1, 5)
    with pytest.raises(ValueError,
                       match=r'features must be \(N, C, H, W\), '
                       r'got shape \(2, 4, 4\)'):
        prroi_pool(torch.zeros(2, 4, 4), rois, 2)
    with pytest.raises(ValueError, match='one device, got meta and cpu'):
        prroi_pool(torch.zeros(1, 1, 4, 4, device='meta'), rois, 2)
    with pytest.raises(ValueError, match='features dtype must be one of'):
        prroi_pool(torch.zeros(1, 1, 4, 4).half(), rois.half(), 2)
    with pytest.raises(ValueError, match='spatial_scale must be positive.*-1'):
        prroi_pool(torch.zeros(1, 1, 4, 4), rois, 2, -1)


def test_op_schema_checks_direct_calls():
    # The C++ checks guard direct torch.ops calls that skip the Python wrapper.
    with pytest.raises(RuntimeError,
                       match=r'output_size must be positive, '
                       r'got \(0, 2\)'):
        torch.ops.gan_mask_rcnn.prroi_pool(torch.zeros(1, 1, 4, 4),
                                           torch.zeros(1, 5), 0, 2, 1.0)
    with pytest.raises(RuntimeError, match=r'grad_output must have shape'):
        torch.ops.gan_mask_rcnn.prroi_pool_backward(torch.zeros(2, 1, 2, 2),
                                                    torch.zeros(1, 5),
                                                    [1, 1, 4, 4], 2, 2, 1.0)


def test_module_matches_mmcv_signature():
    from mmcv.ops import PrRoIPool as MMCVPrRoIPool
    ours, theirs = PrRoIPool(7, 0.25), MMCVPrRoIPool(7, 0.25)
    assert repr(ours) == repr(theirs) == \
        'PrRoIPool(output_size=(7, 7), spatial_scale=0.25)'
    assert ours.output_size == theirs.output_size
    feats, rois = _features(torch.float32,
                            'cpu'), torch.tensor(CASES['interior'][0])
    torch.testing.assert_close(
        PrRoIPool((2, 3))(feats, rois), prroi_pool(feats, rois, (2, 3)))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason='no GPU')
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_cuda_half_types_match_float32(dtype):
    feats = _features(torch.float32, 'cuda', shape=(2, 8, 20, 24))
    rois = torch.tensor(CASES['spatial_scale'][0], device='cuda')
    ref = prroi_pool(feats, rois, 7, 0.5)
    out = prroi_pool(feats.to(dtype), rois.to(dtype), 7, 0.5)
    torch.testing.assert_close(out.float(), ref, rtol=0, atol=2e-2)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason='no GPU')
def test_cuda_matches_mmcv_prroi_pool():
    from mmcv.ops import PrRoIPool as MMCVPrRoIPool
    feats = _features(torch.float32, 'cuda', shape=(2, 8, 20, 24))
    rois = torch.tensor(
        [[0, 4.6, 3.4, 17.8, 14.4], [1, -6, 1, 9, 30], [0, 10, 10, 30, 20]],
        device='cuda')
    outs, grads = [], []
    for op in (PrRoIPool(7, 0.5), MMCVPrRoIPool(7, 0.5)):
        f, r = feats.clone().requires_grad_(), rois.clone().requires_grad_()
        out = op(f, r)
        out.backward(torch.ones_like(out))
        outs.append(out)
        grads.append((f.grad, r.grad))
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-4, atol=1e-5)
    for ours, theirs in zip(*grads):
        torch.testing.assert_close(ours, theirs, rtol=1e-3, atol=1e-4)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason='no GPU')
@pytest.mark.parametrize('size', [7, 28])
def test_cuda_roi_gradient_over_many_block_slices(size):
    """64 channels at 28 x 28 is 50,176 elements per RoI, 25 of the coordinate
    kernel's per-block slices: the block sums must add up to the CPU float64
    gradient (itself checked by gradcheck above), in float64 and float32."""
    feats = _features(torch.float64, 'cpu', shape=(2, 64, 40, 48))
    rois = torch.tensor([[0, 4.6, 3.4, 57.8, 44.4], [1, -6, 1, 19, 70],
                         [0, 30, 10, 90, 60]], dtype=torch.float64)
    grad_out = torch.randn(3, 64, size, size, dtype=torch.float64,
                           generator=torch.Generator().manual_seed(5))
    grads = {}
    for device, dtype in (('cpu', torch.float64), ('cuda', torch.float64),
                          ('cuda', torch.float32)):
        r = rois.to(device, dtype).requires_grad_()
        prroi_pool(feats.to(device, dtype), r, size, 0.5).backward(
            grad_out.to(device, dtype))
        grads[device, dtype] = r.grad.double().cpu()
    ref = grads['cpu', torch.float64]
    torch.testing.assert_close(grads['cuda', torch.float64], ref, rtol=1e-9,
                               atol=1e-9)
    torch.testing.assert_close(grads['cuda', torch.float32], ref, rtol=1e-3,
                               atol=1e-3 * ref.abs().max().item())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason='no GPU')
def test_cuda_forward_and_backward_sync_the_host_once():
    """The Python batch-index check is the call's one device-to-host copy: the C++
    checks and the backward kernels read no RoI on the host."""
    import warnings
    feats = _features(torch.float32, 'cuda', shape=(2, 8, 20, 24)).requires_grad_()
    rois = torch.tensor([[0, 4.6, 3.4, 57.8, 44.4], [1, -6, 1, 19, 70]],
                        device='cuda').requires_grad_()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('warn')
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            out = prroi_pool(feats, rois, 7, 0.5)
            out.backward(torch.ones_like(out))
    finally:
        torch.cuda.set_sync_debug_mode(0)
    syncs = [str(w.message) for w in caught if 'synchroniz' in str(w.message).lower()]
    assert len(syncs) == 1, syncs


HOST_HARNESS = r"""
#include <cstdio>
#include <vector>
#include "prroi_pool_utils.h"
using namespace gan_mask_rcnn;
int main() {
  int h, w, n;
  if (std::scanf("%d %d", &h, &w) != 2) return 1;
  std::vector<double> plane(h * w);
  for (double& v : plane) std::scanf("%lf", &v);
  std::scanf("%d", &n);
  for (int b = 0; b < n; ++b) {
    double x1, y1, x2, y2, edge[4];
    std::scanf("%lf %lf %lf %lf", &x1, &y1, &x2, &y2);
    const double bw = x2 - x1, bh = y2 - y1;
    const double* p = plane.data();
    prroi_edge_averages<double>(p, h, w, x1, y1, x2, y2, 1 / bw, 1 / bh, edge);
    // the RoI pooled to 2 x 3 bins (g = 1 each), as the coordinate kernels do
    const int ph_n = 2, pw_n = 3;
    const auto roi = prroi_geometry(x1, y1, bw / pw_n, bh / ph_n, ph_n, pw_n);
    double grad[4] = {0, 0, 0, 0};
    for (int ph = 0; ph < ph_n; ++ph)
      for (int pw = 0; pw < pw_n; ++pw) {
        double bx1, bx2, by1, by2;
        prroi_bin_edges(roi.rx1, roi.bw, pw, &bx1, &bx2);
        prroi_bin_edges(roi.ry1, roi.bh, ph, &by1, &by2);
        const double avg = prroi_bin_average<double>(p, h, w, bx1, by1, bx2, by2,
                                                     roi.bw, roi.bh);
        prroi_bin_coor_grad(p, h, w, roi, ph, pw, 1.0, avg, 1.0, grad);
      }
    std::printf("%.17g %.17g %.17g %.17g %.17g %.17g %.17g %.17g %.17g\n",
                prroi_bin_average<double>(p, h, w, x1, y1, x2, y2, bw, bh),
                edge[0], edge[1], edge[2], edge[3], grad[0], grad[1], grad[2],
                grad[3]);
  }
  return 0;
}
"""


@pytest.mark.skipif(shutil.which('c++') is None, reason='no C++ compiler')
def test_shared_header_cuda_path_math_on_host(tmp_path):
    """The per-bin functions only the CUDA kernels call, compiled for the host.

    Bin averages and edge averages (means of the surface along each bin edge)
    against midpoint integration of the bilinear surface; the per-element
    coordinate gradient (precomputed reciprocals, edge pairs sharing their
    weights) summed over a 2 x 3 split against central differences of the
    pooled sum.
    """
    from prroi_pool_reference import bilinear_surface
    src, exe = tmp_path / 'harness.cpp', tmp_path / 'harness'
    src.write_text(HOST_HARNESS)
    subprocess.run(['c++', '-O1', '-std=c++17', f'-I{osp.join(CSRC, "common")}', str(src),
                    '-o', str(exe)], check=True, timeout=120)
    plane = _features(torch.float64, 'cpu')[0, 0]  # (9, 11)
    bins = torch.tensor(
        [[2.3, 1.7, 5.9, 4.2], [-0.7, -0.4, 1.6, 2.5], [9.5, 7.2, 10.8, 8.6],
         [3.0, 2.0, 5.0, 6.0], [4.1, 4.2, 4.3, 4.35]],
        dtype=torch.float64)
    numbers = [9, 11] + plane.flatten().tolist() + [len(bins)] + bins.flatten().tolist()
    result = subprocess.run([str(exe)], input=' '.join(map(repr, numbers)),
                            capture_output=True, text=True, check=True, timeout=60)
    got = torch.tensor([[float(v) for v in line.split()]
                        for line in result.stdout.splitlines()], dtype=torch.float64)

    def mean_along(lo, hi):  # midpoints of [lo, hi] at spacing <= STEP
        n = max(1, int((hi - lo) / STEP) + 1)
        return lo + (hi - lo) * (torch.arange(n, dtype=torch.float64) + 0.5) / n

    def pooled_sum(corners):
        rois = torch.tensor([[0, *corners]], dtype=torch.float64)
        return prroi_pool(plane[None, None], rois, (2, 3)).sum().item()

    for (x1, y1, x2, y2), row in zip(bins.tolist(), got):
        rois = torch.tensor([[0, x1, y1, x2, y2]], dtype=torch.float64)
        avg = prroi_pool_reference(plane[None, None], rois, 1, step=STEP)
        xs, ys = mean_along(x1, x2), mean_along(y1, y2)
        edges = [bilinear_surface(plane[None], ys, torch.tensor([x])) for x in (x1, x2)] + \
                [bilinear_surface(plane[None], torch.tensor([y]), xs) for y in (y1, y2)]
        ref = torch.stack([avg.flatten()[0]] + [e.mean() for e in edges])
        atol = error_bound([[0, x1, y1, x2, y2]], 1, 1.0, plane, STEP)
        torch.testing.assert_close(row[:5], ref, rtol=0, atol=atol)
        eps, corners = 1e-6, [x1, y1, x2, y2]
        finite_diff = []
        for i in range(4):
            up, down = list(corners), list(corners)
            up[i] += eps
            down[i] -= eps
            finite_diff.append((pooled_sum(up) - pooled_sum(down)) / (2 * eps))
        torch.testing.assert_close(row[5:], torch.tensor(finite_diff, dtype=torch.float64),
                                   rtol=1e-5, atol=1e-6)


def _nvcc():
    cuda_home = os.environ.get('CUDA_HOME', '/usr/local/cuda')
    return shutil.which('nvcc') or shutil.which(
        osp.join(cuda_home, 'bin', 'nvcc'))


@pytest.mark.slow
@pytest.mark.skipif(_nvcc() is None, reason='nvcc not found')
def test_cuda_sources_compile(tmp_path):
    """nvcc compiles the CUDA kernels (object files only, no GPU needed).

    Both files at once: each spends most of its time in the host compiler on
    torch's headers, so two processes use two cores. A CPU build of torch ships
    the CUDA headers of ATen and c10 but not the build-generated
    ``c10/cuda/impl/cuda_cmake_macros.h``; a one-line stand-in is provided then.
    """
    from torch.utils.cpp_extension import include_paths
    includes = [osp.join(CSRC, 'common')] + include_paths()
    if not any(
            osp.exists(osp.join(p, 'c10/cuda/impl/cuda_cmake_macros.h'))
            for p in include_paths()):
        stub = tmp_path / 'stub' / 'c10' / 'cuda' / 'impl'
        stub.mkdir(parents=True)
        (stub / 'cuda_cmake_macros.h'
         ).write_text('#define C10_CUDA_BUILD_SHARED_LIBS\n')
        includes.append(str(tmp_path / 'stub'))
    procs = {}
    for name in ('prroi_pool_kernel', 'prroi_pool_max_levels_kernel'):
        cmd = [
            _nvcc(), '-c',
            osp.join(CSRC, 'cuda', f'{name}.cu'), '-o',
            str(tmp_path / f'{name}.o'), '-std=c++17', '-DWITH_CUDA',
            '--expt-relaxed-constexpr', '-Xcompiler', '-fPIC',
            '-gencode=arch=compute_90,code=sm_90',
            f'-I{sysconfig.get_paths()["include"]}'
        ] + [f'-I{p}' for p in includes]
        procs[name] = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True)
    try:
        for name, proc in procs.items():
            _, stderr = proc.communicate(timeout=900)
            assert proc.returncode == 0, f'{name}.cu: {stderr[-4000:]}'
            assert (tmp_path / f'{name}.o').stat().st_size > 0
    finally:  # a failure or a timeout leaves no compiler running
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
