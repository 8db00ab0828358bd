"""Where GAN Mask R-CNN's extra training time goes: both models profiled side by side.

Runs training steps of the baseline and the GAN model with the protocol of
``tools/analysis_tools/analysis_tools/benchmark_gan_training.py`` (the GAN model starts from the baseline's
weights; every step starts from the first weights with the same seed for both;
the models alternate batch by batch) under ``torch.profiler`` and prints, per
iteration, each operator's self time in both models and the difference, largest
difference first. The difference is the GAN's cost split by operator: its
discriminators' convolutions, the PrRoIPool kernels, and so on. With
``--by-shape`` operators are also told apart by their input shapes, which
separates the discriminators' convolutions (28x28 inputs) from the detector's,
and the time is also split into the operators the baseline runs too (the
detector's, same shapes) and the GAN's own.
Self time is CPU time on CPU and kernel time on CUDA. Example::

    python tools/analysis_tools/profile_gan_overhead.py --iters 3
    python tools/analysis_tools/profile_gan_overhead.py --iters 3 --by-shape --top 25
"""
import argparse
import os.path as osp
import sys
import tempfile
from typing import Dict, List

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # its sibling, also under runpy
from benchmark_gan_training import (add_pair_args, build_pair,  # noqa: E402
                                    interleaved_times, load_batches, load_configs,
                                    restarts)


def self_times(prof: profile, by_shape: bool, device: str) -> Dict[str, float]:
    """Milliseconds of self time per operator (and input shapes with ``by_shape``)."""
    times = {}
    for event in prof.key_averages(group_by_input_shape=by_shape):
        key = f'{event.key} {event.input_shapes}' if by_shape else event.key
        us = (event.self_device_time_total if device.startswith('cuda')
              else event.self_cpu_time_total)
        times[key] = times.get(key, 0.0) + us / 1e3
    return times


def mean_times(steps: List[Dict[str, float]]) -> Dict[str, float]:
    """Per-iteration mean of each key of ``self_times`` (0 where a step lacks it)."""
    keys = {k for step in steps for k in step}
    return {k: sum(step.get(k, 0.0) for step in steps) / len(steps) for k in keys}


def shared_split(baseline: List[Dict[str, float]],
                 gan: List[Dict[str, float]]) -> Dict[str, float]:
    """Split the GAN's time into operators the baseline also runs and its own.

    Meaningful with ``--by-shape``: then a key the baseline has is the same work
    in both models (the detector's), and the others are the GAN's.

    Returns:
        dict[str, float]: ms per iteration: ``shared_baseline``, ``shared_gan``
        (the same keys in the GAN's step) and ``gan_only``.
    """
    base, ours = mean_times(baseline), mean_times(gan)
    shared = [k for k, v in base.items() if v > 0]
    return dict(shared_baseline=sum(base[k] for k in shared),
                shared_gan=sum(ours.get(k, 0.0) for k in shared),
                gan_only=sum(v for k, v in ours.items() if base.get(k, 0.0) <= 0))


def overhead_rows(baseline: List[Dict[str, float]], gan: List[Dict[str, float]],
                  top: int) -> List[List[str]]:
    """Rows of the table: per-iteration means, the ``top`` largest differences.

    Args:
        baseline (list[dict]): One ``self_times`` per profiled baseline step.
        gan (list[dict]): The same for the GAN model's steps.
        top (int): Operators to list; the rest are summed in one row.

    Returns:
        list[list[str]]: operator, baseline ms, GAN ms, GAN - baseline ms, share
        of the total difference; then 'other operators' and 'total'.
    """
    base, ours = mean_times(baseline), mean_times(gan)
    keys = sorted(set(base) | set(ours),
                  key=lambda k: (-(ours.get(k, 0.0) - base.get(k, 0.0)), k))
    extra = sum(ours.values()) - sum(base.values())

    def row(name: str, b: float, g: float) -> List[str]:
        share = f'{(g - b) / extra:.0%}' if extra else ''
        return [name, f'{b:.1f}', f'{g:.1f}', f'{g - b:+.1f}', share]

    rows = [row(k, base.get(k, 0.0), ours.get(k, 0.0)) for k in keys[:top]]
    rest = keys[top:]
    rows.append(row(f'other operators ({len(rest)})', sum(base.get(k, 0.0) for k in rest),
                    sum(ours.get(k, 0.0) for k in rest)))
    rows.append(row('total', sum(base.values()), sum(ours.values())))
    return rows


def run(cfgs, iters: int, warmup: int, device: str, by_shape: bool) -> List[list]:
    """Profiles of ``iters`` steps of each model after ``warmup`` discarded ones.

    Returns:
        list: The baseline's and the GAN's steps, each a list of ``self_times``.
    """
    if iters < 1 or warmup < 0:
        raise ValueError(f'iters must be >= 1 and warmup >= 0, got {iters}, {warmup}')
    batches = load_batches(cfgs[0], 'train', warmup + iters)
    models, _ = build_pair(cfgs, device)
    activities = [ProfilerActivity.CUDA if device.startswith('cuda') else
                  ProfilerActivity.CPU]
    profiles = {name: [] for name in models}

    def step(name: str):
        model, optim_wrapper = models[name]

        def profiled(batch: dict) -> None:
            with profile(activities=activities, record_shapes=by_shape) as prof:
                model.train_step(batch, optim_wrapper)
            profiles[name].append(self_times(prof, by_shape, device))
        return profiled

    sync = torch.cuda.synchronize if device.startswith('cuda') else (lambda: None)
    interleaved_times({name: step(name) for name in models}, batches, warmup, sync,
                      prepare=restarts(models))
    return [p[warmup:] for p in profiles.values()]  # warm-up steps: profiled, dropped


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    add_pair_args(parser, iters=3, warmup=1)
    parser.add_argument('--by-shape', action='store_true',
                        help='tell operators apart by their input shapes too')
    parser.add_argument('--top', type=int, default=15, help='operators to list')
    return parser.parse_args()


def main():
    args = parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfgs = load_configs(args.configs, args.gan_options, args.size, tmp, args.cfg_options)
        baseline, gan = run(cfgs, args.iters, args.warmup, args.device, args.by_shape)
    print(f'device: {args.device}, torch threads: {torch.get_num_threads()}, '
          f'{args.iters} profiled iterations of each model after {args.warmup} warm-up '
          'ones; self time in ms per iteration')
    head = ['operator', 'Mask R-CNN', 'GAN Mask R-CNN', 'GAN - baseline', 'share']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    print('\n'.join(lines + ['| ' + ' | '.join(r) + ' |'
                             for r in overhead_rows(baseline, gan, args.top)]))
    if args.by_shape:
        split = shared_split(baseline, gan)
        print(f"operators (with shapes) the baseline also runs: {split['shared_baseline']:.1f}"
              f" ms -> {split['shared_gan']:.1f} ms in the GAN's step "
              f"({split['shared_gan'] / split['shared_baseline']:.3f}x); the GAN's own: "
              f"{split['gan_only']:.1f} ms ({split['gan_only'] / split['shared_baseline']:.3f}"
              'x the baseline)')


if __name__ == '__main__':
    main()
