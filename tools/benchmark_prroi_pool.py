"""Benchmark: PrRoIPool vs mmcv RoIAlign vs the pure-PyTorch reference.

Times forward + backward side by side in one run on Mask R-CNN shapes (RoIs of
32-256 px on a stride-4 map) and prints a markdown table of medians and ratios:

* ``prroi (feat grad)``: this project's op, gradient wrt the features
  only (the work RoIAlign does);
* ``prroi (feat+roi grad)``: also the gradient wrt the RoI coordinates;
* ``RoIAlign``: ``mmcv.ops.RoIAlign(out, scale, 2, aligned=True)``;
* ``reference``: ``prroi_pool_reference`` (dense midpoint integration,
  autograd), timed on the first ``--ref-rois`` RoIs with this op beside it
  on the same RoIs;
* on a GPU also ``mmcv PrRoIPool`` (CUDA only, float32).

Example::

    python tools/benchmark_prroi_pool.py               # 512 RoIs, 7x7, 28x28
    python tools/benchmark_prroi_pool.py --threads 1 2 # one table per count
"""
import argparse
import statistics
import time

import torch
from mmcv.ops import RoIAlign

from gan_mask_rcnn.ops import prroi_pool
from gan_mask_rcnn.ops.prroi_pool_reference import prroi_pool_reference


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rois', type=int, default=512)
    parser.add_argument('--channels', type=int, default=256)
    parser.add_argument('--height', type=int, default=200)
    parser.add_argument('--width', type=int, default=336)
    parser.add_argument('--scale',
                        type=float,
                        default=0.25,
                        help='feature-map pixels per image pixel')
    parser.add_argument('--sizes', type=int, nargs='+', default=[7, 28])
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--ref-rois',
                        type=int,
                        default=8,
                        help='RoIs on which the slow reference is timed')
    parser.add_argument('--ref-step',
                        type=float,
                        default=0.25,
                        help='reference sample spacing, feature-map pixels')
    parser.add_argument(
        '--threads',
        type=int,
        nargs='+',
        default=None,
        help='CPU thread counts to run (default: torch default)')
    parser.add_argument('--device', default='cpu')
    return parser.parse_args()


def make_inputs(args, device):
    """(2, C, H, W) features and (K, 5) RoIs of 32-256 px inside the image."""
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(2,
                        args.channels,
                        args.height,
                        args.width,
                        generator=gen)
    img_h, img_w = args.height / args.scale, args.width / args.scale
    size = 32 + 224 * torch.rand(args.rois, 2, generator=gen)
    ctr = torch.rand(args.rois, 2, generator=gen) * torch.tensor(
        [img_w, img_h])
    lo = (ctr - size / 2).clamp(min=0)
    hi = torch.minimum(lo + size, torch.tensor([img_w, img_h]))
    batch = torch.randint(0, 2, (args.rois, 1), generator=gen).float()
    rois = torch.cat([batch, lo, hi], dim=1)
    return feats.to(device), rois.to(device)


def timed(fn, feats, rois, repeat, roi_grad=False):
    """Median seconds of forward and of forward + backward of ``fn``."""
    fwd, total = [], []
    for it in range(repeat + 1):
        f = feats.detach().requires_grad_()
        r = rois.detach().requires_grad_(roi_grad)
        sync(feats)
        t0 = time.perf_counter()
        out = fn(f, r)
        sync(feats)
        t1 = time.perf_counter()
        out.backward(torch.ones_like(out))
        sync(feats)
        t2 = time.perf_counter()
        if it:  # the first run warms up
            fwd.append(t1 - t0)
            total.append(t2 - t0)
    return statistics.median(fwd), statistics.median(total)


def sync(tensor):
    if tensor.is_cuda:
        torch.cuda.synchronize()


def run(args, device):
    feats, rois = make_inputs(args, device)
    rows = []
    for out in args.sizes:
        roi_align = RoIAlign(out, args.scale, sampling_ratio=2, aligned=True)
        ours = lambda f, r, out=out: prroi_pool(f, r, out, args.scale)  # noqa
        ref = lambda f, r, out=out: prroi_pool_reference(  # noqa
            f, r, out, args.scale, step=args.ref_step)
        base = timed(roi_align, feats, rois, args.repeat)
        mine = timed(ours, feats, rois, args.repeat)
        mine_roi = timed(ours, feats, rois, args.repeat, roi_grad=True)
        rows.append((f'{out}x{out}', 'RoIAlign', args.rois, base, base))
        rows.append(
            (f'{out}x{out}', 'prroi (feat grad)', args.rois, mine, base))
        rows.append((f'{out}x{out}', 'prroi (feat+roi grad)', args.rois,
                     mine_roi, base))
        if device.type == 'cuda':
            from mmcv.ops import PrRoIPool
            mmcv_prroi = PrRoIPool(out, args.scale)
            rows.append(
                (f'{out}x{out}', 'mmcv PrRoIPool (feat grad)', args.rois,
                 timed(mmcv_prroi, feats, rois, args.repeat), base))
        sub = rois[:args.ref_rois]
        mine_sub = timed(ours, feats, sub, 1, roi_grad=True)
        ref_sub = timed(ref, feats, sub, 1, roi_grad=True)
        err = (ours(feats, sub) - ref(feats, sub)).abs().max().item()
        rows.append((f'{out}x{out}', 'prroi (feat+roi grad)', len(sub),
                     mine_sub, mine_sub))
        rows.append((f'{out}x{out}', f'reference (max |diff| {err:.1e})',
                     len(sub), ref_sub, mine_sub))
    return rows


def print_table(rows, title):
    print(f'\n{title}\n')
    print('| output | op | RoIs | fwd ms | fwd+bwd ms | fwd+bwd vs '
          'row baseline |')
    print('|---|---|---|---|---|---|')
    for out, name, k, (fwd, total), (_, base_total) in rows:
        print(f'| {out} | {name} | {k} | {fwd * 1e3:.1f} | '
              f'{total * 1e3:.1f} | {total / base_total:.2f}x |')


def main():
    args = parse_args()
    device = torch.device(args.device)
    print(f'torch {torch.__version__}, device {device}, features '
          f'(2, {args.channels}, {args.height}, {args.width}), scale '
          f'{args.scale}, reference step {args.ref_step} px; baseline: '
          'RoIAlign for the full-K rows, this op for the reference rows')
    for threads in args.threads or [torch.get_num_threads()]:
        torch.set_num_threads(threads)
        print_table(run(args, device), f'{threads} CPU thread(s)')


if __name__ == '__main__':
    main()
