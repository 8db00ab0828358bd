"""Two runs of one config that differ only in float rounding: how far apart do they end?

A paired GAN-minus-baseline difference can only be read against the spread that
two runs of the *same* config already have. On a CPU that spread starts in the
last bits: another machine's kernels round the same arithmetic differently, and
training amplifies it. On an AVX-512 machine the kernels of an AVX2 machine are
approached by holding ATen, oneDNN and MKL to AVX2 (``ATEN_CPU_CAPABILITY=avx2
ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2``); on an AVX2 machine
``ONEDNN_MAX_CPU_ISA=AVX`` drops fused multiply-add from oneDNN's convolutions.
This tool reads the finished runs of one model in two
``tools/run_experiment.py`` work directories, checks seed by seed that they ran
the same config (as ``--baseline-from`` does), and writes per metric each side's
mean, the per-seed difference second - first, its mean ± sample standard
deviation, its mean absolute size and the paired t-test:
``rerun_spread.{json,md}`` in the second directory. Example::

    python tools/run_experiment.py --dataset glas --seeds 0 1 --iters 400 \
        --image-scale 288 192 --models baseline --work-dir work_dirs/rerun_avx512
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 \
        python tools/run_experiment.py --dataset glas --seeds 0 1 --iters 400 \
        --image-scale 288 192 --models baseline --work-dir work_dirs/rerun_avx2
    python tools/analysis_tools/rerun_spread.py work_dirs/rerun_avx512 work_dirs/rerun_avx2 \
        --seeds 0 1 --names AVX-512 AVX2
"""
import argparse
import json
import os.path as osp
from typing import Dict, List, Sequence

import numpy as np

from gan_mask_rcnn_lab.experiment_tables import METRICS, metric_rows, summarize
from gan_mask_rcnn_lab.markdown import markdown_header
from gan_mask_rcnn_lab.run_records import (check_same_splits, comparable_config,
                                           config_difference, finished_run, write_atomic)


def load_pairs(dirs: Sequence[str], model: str, seeds: List[int]) -> Dict[str, dict]:
    """Test metrics of ``<dir>/<model>_seed<s>`` in both dirs, after checking that
    each seed's two runs trained the same config (and split files, if any).

    Returns:
        dict: ``{'baseline': {seed: metrics of the first dir}, 'gan': {seed:
        metrics of the second}}``, the layout of ``experiment_tables.summarize``.
    """
    first, second = (osp.abspath(d) for d in dirs)
    check_same_splits([first, second])
    runs = {'baseline': {}, 'gan': {}}
    for seed in seeds:
        run_dirs = [osp.join(d, f'{model}_seed{seed}') for d in (first, second)]
        for side, run_dir in zip(runs, run_dirs):
            finished = finished_run(run_dir)
            if finished is None:
                raise SystemExit(f'{run_dir} holds no finished run (test metrics and '
                                 'wall_seconds.txt): finish it with run_experiment.py')
            runs[side][seed] = finished[0]
        difference = config_difference(
            comparable_config(osp.join(run_dirs[0], 'config.py'), first, second),
            comparable_config(osp.join(run_dirs[1], 'config.py')), *run_dirs)
        if difference:
            raise SystemExit(f'seed {seed}: the two runs trained other configs, so their '
                             f'difference is not rounding alone:\n{difference}')
    return runs


def spread_table(runs: Dict[str, dict], seeds: List[int]) -> Dict[str, dict]:
    """``experiment_tables.summarize`` of the two sides plus ``mean_abs``, the mean
    absolute per-seed difference, per metric (AP in %)."""
    table = summarize(runs, seeds)
    for row in table.values():
        row['mean_abs'] = float(np.mean(np.abs(list(row['per_seed'].values()))))
    return table


def to_markdown(table: Dict[str, dict], names: Sequence[str], seeds: List[int]) -> str:
    """One row per metric: both sides, the difference and its absolute size."""
    a, b = names
    lines = markdown_header(['metric', a, b, f'{b} - {a}', f'per seed {list(seeds)}',
                             'mean abs. difference', '95% interval', 'paired t (p)'])
    lines += metric_rows(table, extra=lambda row: [f'{row["mean_abs"]:.1f}'])
    lines += ['', 'AP in %, mean ± sample standard deviation over the seeds; the same '
              'config on both sides, so every difference is drift from float rounding.']
    return '\n'.join(lines) + '\n'


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('work_dirs', nargs=2, help='two tools/run_experiment.py --work-dir')
    p.add_argument('--seeds', type=int, nargs='+', required=True)
    p.add_argument('--model', choices=['baseline', 'gan'], default='baseline')
    p.add_argument('--names', nargs=2, default=['first', 'second'],
                   help='column labels of the two dirs, e.g. native AVX')
    return p.parse_args()


def main():
    args = parse_args()
    runs = load_pairs(args.work_dirs, args.model, args.seeds)
    table = spread_table(runs, args.seeds)
    missing = sorted(set(METRICS) - set(table))
    md = to_markdown(table, args.names, args.seeds)
    out = args.work_dirs[1]
    write_atomic(osp.join(out, 'rerun_spread.md'), md)
    write_atomic(osp.join(out, 'rerun_spread.json'), json.dumps(
        dict(work_dirs=args.work_dirs, names=args.names, model=args.model,
             seeds=args.seeds, runs=runs, summary=table), indent=2))
    print(md + (f'\nnot reported by both sides: {missing}' if missing else '')
          + f'\nwritten to {out}/rerun_spread.{{json,md}}')


if __name__ == '__main__':
    main()
