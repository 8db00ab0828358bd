"""Benchmark: this project's PrRoIPool against mmcv's PrRoIPool and RoIAlign.

Forward + backward on Mask R-CNN shapes (2 x C x H x W features, RoIs of 32-256
px, spatial scale 0.25), every op timed side by side in one run; medians of
``--repeat`` runs after one warm-up (CUDA events on a GPU). One row per (RoIs,
output size), ratios ``this / other`` (below 1: this op is faster):

* feature grad: gradient wrt the features only, this op / mmcv ``PrRoIPool``;
* RoI grad: gradient wrt the features and the RoI coordinates (the GAN's box
  path), this op / mmcv ``PrRoIPool``;
* this op (feature grad) / ``roi_align`` (torchvision's if installed, else
  mmcv's; sampling ratio 2, aligned), the op Mask R-CNN's heads use.

mmcv's PrRoIPool runs on CUDA only; on a CPU those columns read ``n/a``.

Example::

    python tools/analysis_tools/analysis_tools/benchmark_prroi_pool.py --device cuda   # 512 and 4096 RoIs
    python tools/analysis_tools/analysis_tools/benchmark_prroi_pool.py --rois 512 --threads 1 2
"""
import argparse
import statistics
import time

import torch

from gan_mask_rcnn.ops import prroi_pool
from gan_mask_rcnn_lab.markdown import markdown_table


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


def median_seconds(op, feats, rois, repeat, timer, roi_grad):
    """Median seconds of forward + backward of ``op(feats, rois)``."""
    times = []
    for it in range(repeat + 1):
        f = feats.detach().requires_grad_()
        r = rois.detach().requires_grad_(roi_grad)

        def step():
            out = op(f, r)
            out.backward(torch.ones_like(out))

        seconds = timer(step)
        if it:  # the first run warms up
            times.append(seconds)
    return statistics.median(times)


def other_ops(device, out, scale):
    """mmcv's PrRoIPool (CUDA only, else None) and the roi_align to compare."""
    mmcv_prroi = None
    if device.type == 'cuda':
        from mmcv.ops import PrRoIPool
        mmcv_prroi = PrRoIPool(out, scale)
    try:
        from torchvision.ops import roi_align
        return mmcv_prroi, ('torchvision roi_align',
                            lambda f, r: roi_align(f, r, out, scale, 2, True))
    except ImportError:
        from mmcv.ops import roi_align
        return mmcv_prroi, ('mmcv roi_align',
                            lambda f, r: roi_align(f, r, out, scale, 2, 'avg', True))


def ratio(ours, theirs):
    if theirs is None:
        return f'n/a ({ours * 1e3:.1f} ms / n/a)'
    return f'{ours / theirs:.2f} ({ours * 1e3:.1f} / {theirs * 1e3:.1f} ms)'


def run(args, device):
    repeat = args.repeat or (20 if device.type == 'cuda' else 3)
    timer = Timer(device)
    rows, align_name = [], None
    for num_rois in args.rois:
        feats, rois = make_inputs(num_rois, args, device)
        for out in args.sizes:
            ours = lambda f, r, out=out: prroi_pool(f, r, out, args.scale)  # noqa
            mmcv_prroi, (align_name, align) = other_ops(device, out, args.scale)
            t = {}
            for roi_grad in (False, True):
                t['this', roi_grad] = median_seconds(ours, feats, rois, repeat, timer,
                                                     roi_grad)
                t['mmcv', roi_grad] = None if mmcv_prroi is None else median_seconds(
                    mmcv_prroi, feats, rois, repeat, timer, roi_grad)
            t['align'] = median_seconds(align, feats, rois, repeat, timer, False)
            rows.append((num_rois, out, ratio(t['this', False], t['mmcv', False]),
                         ratio(t['this', True], t['mmcv', True]),
                         ratio(t['this', False], t['align'])))
    return rows, align_name


def print_table(rows, align_name, title):
    print(f'\n{title}\n')
    print(markdown_table(['RoIs', 'out', 'feature grad only: this / mmcv PrRoIPool',
                          'with RoI grad: this / mmcv PrRoIPool',
                          f'this / {align_name} (feature grad)'], rows))


def main():
    args = parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'
    print(f'torch {torch.__version__}, {name}, features (2, {args.channels}, '
          f'{args.height}, {args.width}), spatial scale {args.scale}, forward + '
          'backward, median ratio this / other (below 1: this op is faster)')
    for threads in (args.threads or [torch.get_num_threads()]):
        torch.set_num_threads(threads)
        rows, align_name = run(args, device)
        title = device.type.upper() if device.type == 'cuda' else f'{threads} CPU thread(s)'
        print_table(rows, align_name, title)


if __name__ == '__main__':
    main()
