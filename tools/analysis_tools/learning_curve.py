"""Baseline vs GAN along the schedule: evaluate the kept checkpoints of paired runs.

Reads a ``tools/run_experiment.py`` work directory, evaluates each checkpoint
``iter_<k>.pth`` that both models kept for every chosen seed (in
``<model>_seed<s>/`` or ``keep/<model>_seed<s>/``) with ``mim test mmdet`` and the
run's own ``config.py`` (so on the split that run was evaluated on), and writes,
per iteration, each model's mean over the seeds and the paired GAN - baseline
difference: ``curve.json``, ``curve.md`` and ``curve.png`` in ``<work_dir>/curve``.
Evaluations are resumable: a checkpoint whose metrics are there is not evaluated
again. Runs keep every checkpoint when trained with
``--options default_hooks.checkpoint.max_keep_ckpts=-1``. With ``--average-from K``
the table ends with one more row: per run the mean of its evaluations from
iteration K on (e.g. every checkpoint after the learning-rate drop), then, over
the seeds, each model's mean and the paired difference with its paired t-test,
a steadier reading than the last checkpoint alone. Example::

    python tools/analysis_tools/learning_curve.py work_dirs/exp_glas_1000_paired --seeds 0 1 \
        --iters 200 400 600 800 900 1000 --average-from 800
"""
import argparse
import glob
import json
import os.path as osp
import re
import sys
from typing import Dict, List, Optional, Tuple

from mmengine.config import Config

from gan_mask_rcnn_lab.experiment_tables import METRICS, summarize
from gan_mask_rcnn_lab.markdown import markdown_header, markdown_row
from gan_mask_rcnn_lab.mim_runs import mim_test

MODELS = ('baseline', 'gan')


def find_checkpoints(work_dir: str, model: str, seed: int) -> Dict[int, str]:
    """Iteration -> checkpoint path of one run (its own folder first, then ``keep/``)."""
    found = {}
    for sub in (f'{model}_seed{seed}', osp.join('keep', f'{model}_seed{seed}')):
        for path in sorted(glob.glob(osp.join(work_dir, sub, 'iter_*.pth'))):
            match = re.fullmatch(r'iter_(\d+)\.pth', osp.basename(path))
            if match:
                found.setdefault(int(match.group(1)), path)
    return found


def paired_checkpoints(work_dir: str, seeds: List[int], iters: Optional[List[int]] = None
                       ) -> Dict[int, Dict[str, Dict[int, str]]]:
    """Checkpoints of the iterations (all, or those in ``iters``) that both
    models kept for every seed: ``{iteration: {model: {seed: path}}}``."""
    found = {(m, s): find_checkpoints(work_dir, m, s) for m in MODELS for s in seeds}
    common = set.intersection(*(set(c) for c in found.values()))
    return {k: {m: {s: found[m, s][k] for s in seeds} for m in MODELS}
            for k in sorted(common) if iters is None or k in iters}


def curve_table(metrics: Dict[int, Dict[str, Dict[int, dict]]],
                seeds: List[int]) -> Dict[int, dict]:
    """``experiment_tables.summarize`` at each iteration: ``{iteration: {metric: row}}``."""
    return {k: summarize(runs, seeds) for k, runs in sorted(metrics.items())}


def window_average(metrics: Dict[int, Dict[str, Dict[int, dict]]], seeds: List[int],
                   start: int) -> Tuple[List[int], dict]:
    """Per run, the mean of its evaluations at iterations >= ``start``; then
    ``experiment_tables.summarize`` over the seeds.

    Returns:
        tuple: The iterations averaged, and ``{metric: row}`` (with the paired
        t-test) for the metrics every one of those evaluations reports.
    """
    window = [k for k in sorted(metrics) if k >= start]
    if not window:
        raise ValueError(f'no evaluated iteration is >= {start} (have {sorted(metrics)})')
    runs = {}
    for model in MODELS:
        runs[model] = {}
        for seed in seeds:
            evals = [metrics[k][model][seed] for k in window]
            keys = set.intersection(*(set(e) for e in evals))
            runs[model][seed] = {key: sum(e[key] for e in evals) / len(evals)
                                 for key in keys if key in METRICS}
    return window, summarize(runs, seeds)


def _cell(row: dict, with_p: bool = False) -> str:
    """``baseline -> GAN (diff ± std[, p])`` of one ``summarize`` row."""
    spread = '' if row['diff'][1] is None else f' ± {row["diff"][1]:.1f}'
    p = (f', p {row["paired_t"][1]:.2f}'
         if with_p and row['paired_t'] is not None else '')
    return (f'{row["baseline"][0]:.1f} -> {row["gan"][0]:.1f} '
            f'({row["diff"][0]:+.1f}{spread}{p})')


def to_markdown(table: Dict[int, dict], keys: List[str], seeds: List[int],
                average: Optional[dict] = None, window: str = '') -> str:
    """One row per iteration; per metric ``baseline -> GAN (GAN - baseline ± std)``;
    last, with ``average`` (``window_average``), a row labelled ``window`` whose
    cells also give the paired t-test's p."""
    lines = [f'Seeds {seeds}; AP in %, mean over the seeds; in brackets the paired '
             'difference GAN - baseline (± its sample standard deviation over seeds).',
             ''] + markdown_header(['iteration'] + keys)
    for k, rows in table.items():
        lines.append(markdown_row([k] + [_cell(rows[key]) for key in keys]))
    if average is not None:
        lines.append(markdown_row([window] + [_cell(average[key], with_p=True)
                                              for key in keys]))
    return '\n'.join(lines) + '\n'


def plot(table: Dict[int, dict], keys: List[str], out_file: str,
         adv_start: Optional[int] = None) -> None:
    """One panel per metric: both models' means against the iteration; a dotted
    line at the GAN's first adversarial iteration ``adv_start``."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.4), squeeze=False)
    iters = list(table)
    for ax, key in zip(axes[0], keys):
        for model, style in zip(MODELS, ('o-', 's--')):
            ax.plot(iters, [table[k][key][model][0] for k in iters], style, label=model)
        if adv_start is not None:
            ax.axvline(adv_start, color='gray', linestyle=':', label='adversarial start')
        ax.set_title(key, fontsize=10)
        ax.set_xlabel('iteration')
        ax.set_ylabel('AP (%)')
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_file, dpi=100)
    plt.close(fig)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('work_dir', help='a tools/run_experiment.py --work-dir')
    p.add_argument('--seeds', type=int, nargs='+', required=True)
    p.add_argument('--iters', type=int, nargs='+',
                   help='evaluate only these iterations (default: every one kept)')
    p.add_argument('--metrics', nargs='+', default=['segm_mAP', 'boundary_mAP',
                                                    'bbox_mAP', 'segm_mAP_75'],
                   choices=METRICS, help='columns of the table and panels of the figure')
    p.add_argument('--average-from', type=int, metavar='K',
                   help='add a row: per run the mean of its evaluations at iterations '
                        '>= K, compared over the seeds (paired t-test)')
    return p.parse_args()


def main():
    args = parse_args()
    out = osp.join(args.work_dir, 'curve')
    ckpts = paired_checkpoints(args.work_dir, args.seeds, args.iters)
    if not ckpts:
        sys.exit(f'no iteration {"in " + str(args.iters) + " " if args.iters else ""}'
                 f'has checkpoints of both models for seeds {args.seeds} under '
                 f'{args.work_dir} (<model>_seed<s>/ or keep/<model>_seed<s>/)')
    if args.average_from is not None and max(ckpts) < args.average_from:
        sys.exit(f'--average-from {args.average_from}: no checkpoint that both models kept '
                 f'is that late (latest: iteration {max(ckpts)})')
    for model in MODELS:
        for seed in args.seeds:
            if not osp.exists(osp.join(args.work_dir, f'{model}_seed{seed}', 'config.py')):
                sys.exit(f'{args.work_dir}/{model}_seed{seed}/config.py is missing: the '
                         'checkpoints are evaluated with their run\'s own config')
    metrics = {k: {m: {} for m in MODELS} for k in ckpts}
    for n, (k, by_model) in enumerate(ckpts.items(), 1):
        for model, by_seed in by_model.items():
            for seed, ckpt in by_seed.items():
                print(f'[curve] iteration {k} ({n}/{len(ckpts)}): {model} seed {seed}',
                      flush=True)
                run = f'{model}_seed{seed}'
                test_dir = osp.join(out, run, f'iter_{k}')
                metrics[k][model][seed] = mim_test(
                    osp.join(args.work_dir, run, 'config.py'), ckpt, test_dir,
                    osp.join(test_dir, 'test.log'))
    table = curve_table(metrics, args.seeds)
    keys = [key for key in args.metrics if all(key in rows for rows in table.values())]
    if not keys:
        sys.exit(f'none of {args.metrics} was reported by every evaluation')
    if keys != args.metrics:
        print(f'not reported by every evaluation, left out: '
              f'{sorted(set(args.metrics) - set(keys))}')
    average, window = None, ''
    if args.average_from is not None:
        iters, average = window_average(metrics, args.seeds, args.average_from)
        window = f'mean of {", ".join(map(str, iters))}'
    md = to_markdown(table, keys, args.seeds, average, window)
    with open(osp.join(out, 'curve.json'), 'w') as f:
        json.dump(dict(seeds=args.seeds, metrics=metrics, summary=table,
                       average=None if average is None else dict(
                           from_iter=args.average_from, summary=average)), f, indent=2)
    with open(osp.join(out, 'curve.md'), 'w') as f:
        f.write(md)
    gan_cfg = Config.fromfile(osp.join(args.work_dir, f'gan_seed{args.seeds[0]}', 'config.py'))
    plot(table, keys, osp.join(out, 'curve.png'),
         round(gan_cfg.model.get('adv_start_fraction', 0) * gan_cfg.train_cfg.max_iters))
    print(md + f'\nwritten to {out}/curve.{{json,md,png}}')


if __name__ == '__main__':
    main()
