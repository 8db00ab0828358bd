"""Benchmark: this project's PrRoIPool against mmcv's PrRoIPool and RoIAlign.

Mask R-CNN shapes (2 x C x H x W features, RoIs of 32-256 px, spatial scale 0.25),
every op timed side by side in one run: medians of ``--repeat`` runs after one
warm-up (CUDA events on a GPU). Each kernel is timed on its own, as autograd calls
it, with the same inputs and upstream gradient for both implementations:

* forward;
* feature backward: the gradient wrt the features;
* RoI backward: the gradient wrt the RoI coordinates (the GAN's box path);

one row per (RoIs, output size, pass) with this op's and mmcv's milliseconds and
their ratio (below 1: this op is faster), plus this op's forward against
``roi_align`` (torchvision's if installed, else mmcv's; sampling ratio 2, aligned),
the op Mask R-CNN's heads use. mmcv's PrRoIPool runs on CUDA only; without it
(a CPU, or no mmcv) its columns read ``n/a`` and this op's timings still print.

Example::

    python tools/analysis_tools/benchmark_prroi_pool.py --device cuda   # 512 and 4096 RoIs
    python tools/analysis_tools/benchmark_prroi_pool.py --rois 512 --threads 1 2
"""
import argparse
import statistics
import time

import torch

from gan_mask_rcnn.ops import prroi_pool
from gan_mask_rcnn_lab.markdown import markdown_table

PASSES = ('forward', 'feature backward', 'RoI backward')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rois', type=int, nargs='+', default=[512, 4096])
    parser.add_argument('--sizes', type=int, nargs='+', default=[7, 28])
    parser.add_argument('--channels', type=int, default=256)
    parser.add_argument('--height', type=int, default=200)
    parser.add_argument('--width', type=int, default=336)
    parser.add_argument('--scale', type=float, default=0.25,
                        help='feature-map pixels per image pixel')
    parser.add_argument('--repeat', type=int, default=None,
                        help='timed runs per op (default: 20 on CUDA, 3 on CPU)')
    parser.add_argument('--threads', type=int, nargs='+', default=None,
                        help='CPU thread counts, one table each')
    parser.add_argument('--device', default='cpu')
    return parser.parse_args()


def make_inputs(num_rois, args, device):
    """(2, C, H, W) features and (K, 5) RoIs of 32-256 px inside the image."""
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(2, args.channels, args.height, args.width, generator=gen)
    img_w, img_h = args.width / args.scale, args.height / args.scale
    size = 32 + 224 * torch.rand(num_rois, 2, generator=gen)
    ctr = torch.rand(num_rois, 2, generator=gen) * torch.tensor([img_w, img_h])
    lo = (ctr - size / 2).clamp(min=0)
    hi = torch.minimum(lo + size, torch.tensor([img_w, img_h]))
    batch = torch.randint(0, 2, (num_rois, 1), generator=gen).float()
    return feats.to(device), torch.cat([batch, lo, hi], dim=1).to(device)


class Timer:
    """Wall time of a callable: CUDA events on a GPU, perf_counter on a CPU."""

    def __init__(self, device):
        self.cuda = device.type == 'cuda'

    def __call__(self, fn) -> float:
        if self.cuda:
            start, end = (torch.cuda.Event(enable_timing=True) for _ in range(2))
            torch.cuda.synchronize()
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end) / 1e3
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0


def median_seconds(fn, repeat, timer):
    """Median seconds of ``fn()`` over ``repeat`` runs after one warm-up."""
    return statistics.median([timer(fn) for _ in range(repeat + 1)][1:])


def this_op_passes(feats, rois, out, scale):
    """The three kernels of this op, as autograd calls them."""
    ops = torch.ops.gan_mask_rcnn
    output = prroi_pool(feats, rois, out, scale)
    grad = torch.randn_like(output)
    return {
        'forward': lambda: ops.prroi_pool(feats, rois, out, out, scale),
        'feature backward': lambda: ops.prroi_pool_backward(grad, rois, feats.shape, out, out,
                                                            scale),
        'RoI backward': lambda: ops.prroi_pool_coor_backward(grad, output, feats, rois, out,
                                                             out, scale)}


def mmcv_passes(feats, rois, out, scale):
    """mmcv's three PrRoIPool kernels (CUDA only), or None without them."""
    if not feats.is_cuda:
        return None
    try:
        from mmcv.ops.prroi_pool import ext_module
    except Exception as exc:  # noqa: BLE001 (any failure: this op's timings still print)
        print(f'mmcv PrRoIPool unavailable ({type(exc).__name__}: {exc}): its columns read n/a')
        return None
    params = dict(pooled_height=out, pooled_width=out, spatial_scale=scale)
    output = feats.new_zeros(rois.shape[0], feats.shape[1], out, out)
    ext_module.prroi_pool_forward(feats, rois, output, **params)
    grad = torch.randn_like(output)
    grad_feats, grad_rois = torch.zeros_like(feats), torch.zeros_like(rois)
    return {
        'forward': lambda: ext_module.prroi_pool_forward(feats, rois, output, **params),
        'feature backward': lambda: ext_module.prroi_pool_backward(
            grad, rois, grad_feats.zero_(), **params),
        'RoI backward': lambda: ext_module.prroi_pool_coor_backward(
            output, grad, feats, rois, grad_rois.zero_(), **params)}


def roi_align_forward(out, scale):
    """(name, forward) of the roi_align that Mask R-CNN's heads use."""
    try:
        from torchvision.ops import roi_align
        return 'torchvision roi_align', lambda f, r: roi_align(f, r, out, scale, 2, True)
    except ImportError:
        from mmcv.ops import roi_align
        return 'mmcv roi_align', lambda f, r: roi_align(f, r, out, scale, 2, 'avg', True)


def ms_ratio(ours, theirs):
    return ('n/a', 'n/a') if theirs is None else (f'{theirs * 1e3:.2f}', f'{ours / theirs:.2f}')


def run(args, device):
    repeat = args.repeat or (20 if device.type == 'cuda' else 3)
    timer = Timer(device)
    rows, align_name = [], None
    with torch.no_grad():
        for num_rois in args.rois:
            feats, rois = make_inputs(num_rois, args, device)
            for out in args.sizes:
                ours = this_op_passes(feats, rois, out, args.scale)
                theirs = mmcv_passes(feats, rois, out, args.scale)
                align_name, align = roi_align_forward(out, args.scale)
                t_align = median_seconds(lambda: align(feats, rois), repeat, timer)
                for name in PASSES:
                    t = median_seconds(ours[name], repeat, timer)
                    t_mmcv = None if theirs is None else median_seconds(theirs[name], repeat,
                                                                        timer)
                    rows.append((num_rois, out, name, f'{t * 1e3:.2f}', *ms_ratio(t, t_mmcv),
                                 f'{t / t_align:.2f}' if name == 'forward' else ''))
    return rows, align_name


def main():
    args = parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'
    print(f'torch {torch.__version__}, {name}, features (2, {args.channels}, '
          f'{args.height}, {args.width}), spatial scale {args.scale}, median ms per call')
    for threads in (args.threads or [torch.get_num_threads()]):
        torch.set_num_threads(threads)
        rows, align_name = run(args, device)
        title = device.type.upper() if device.type == 'cuda' else f'{threads} CPU thread(s)'
        print(f'\n{title}\n')
        print(markdown_table(['RoIs', 'out', 'pass', 'this op (ms)', 'mmcv PrRoIPool (ms)',
                              'this / mmcv', f'this / {align_name}'], rows))


if __name__ == '__main__':
    main()
