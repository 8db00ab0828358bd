"""Pool the paired seeds of several ``tools/run_experiment.py`` work directories.

Seeds of one experiment are often trained in several work directories (another
session, another machine of the same kernel set). This tool reads every seed whose
baseline and GAN runs both finished in each directory, checks that all runs of a
model trained the same config up to the seed (and the same split files), refuses a
seed found in two directories, and writes the table of ``run_experiment.py`` over
the union of the seeds: each side's mean ± sample standard deviation, the per-seed
GAN - baseline, its mean ± sd and the paired t-test, to ``pooled.{json,md}`` in
``--out``. Example::

    python tools/analysis/pool_seeds.py work_dirs/exp_glas_400_paired \
        work_dirs/exp_glas_400_paired_more --out work_dirs/glas_400_pooled
"""
import argparse
import glob
import json
import os
import os.path as osp
import re
from typing import Dict, List, Sequence, Tuple

from gan_mask_rcnn.experiment_tables import PAIRED_NOTE, paired_table, summarize
from gan_mask_rcnn.run_records import (check_same_splits, comparable_config,
                                       config_difference, finished_run, write_atomic)

MODELS = ('baseline', 'gan')


def finished_pairs(work_dir: str) -> Dict[int, Dict[str, dict]]:
    """``{seed: {model: test metrics}}`` of the seeds of ``work_dir`` whose baseline
    and GAN runs have both finished."""
    pairs = {}
    for run_dir in glob.glob(osp.join(work_dir, 'baseline_seed*')):
        match = re.fullmatch(r'baseline_seed(\d+)', osp.basename(run_dir))
        if not match:
            continue
        finished = {m: finished_run(osp.join(work_dir, f'{m}_seed{match[1]}'))
                    for m in MODELS}
        if all(finished.values()):
            pairs[int(match[1])] = {m: f[0] for m, f in finished.items()}
    return pairs


def seedless_config(run_dir: str, ref_dir: str) -> dict:
    """``comparable_config`` of ``run_dir`` with its paths as if in ``ref_dir`` and
    without ``randomness`` (the seed, the one key that differs between seeds)."""
    run_dir, ref_dir = osp.realpath(run_dir), osp.realpath(ref_dir)
    cfg = comparable_config(osp.join(run_dir, 'config.py'), run_dir, ref_dir)
    cfg.pop('randomness', None)
    return cfg


def load_pooled(work_dirs: Sequence[str]) -> Tuple[Dict[str, dict], List[int]]:
    """Test metrics of the finished seeds of every dir, checked to pool.

    Returns:
        tuple[dict, list[int]]: ``{'baseline': {seed: metrics}, 'gan': {...}}``
        (the layout of ``experiment_tables.summarize``) and the sorted seeds.
    """
    dirs = [osp.abspath(d) for d in work_dirs]
    check_same_splits(dirs)
    runs = {m: {} for m in MODELS}
    owner, refs = {}, {}  # refs: model -> (run dir, its seedless config)
    for work in dirs:
        pairs = finished_pairs(work)
        if not pairs:
            raise SystemExit(f'{work} holds no seed with both runs finished (test metrics '
                             'and wall_seconds.txt): finish them with run_experiment.py')
        for seed, metrics in sorted(pairs.items()):
            if seed in owner:
                raise SystemExit(f'seed {seed} is in {owner[seed]} and in {work}: pool '
                                 'each seed once (leave one dir out or move the runs)')
            owner[seed] = work
            for model in MODELS:
                run_dir = osp.join(work, f'{model}_seed{seed}')
                if model not in refs:
                    refs[model] = run_dir, seedless_config(run_dir, run_dir)
                ref_dir, ref_cfg = refs[model]
                difference = config_difference(ref_cfg, seedless_config(run_dir, ref_dir),
                                               ref_dir, run_dir)
                if difference:
                    raise SystemExit(f'{run_dir} trained another config than {ref_dir}, '
                                     f'so their seeds do not pool:\n{difference}')
                runs[model][seed] = metrics[model]
    return runs, sorted(owner)


def to_markdown(table: dict, work_dirs: Sequence[str], seeds: List[int]) -> str:
    lines = [f'Seeds {seeds} pooled from {", ".join(f"`{d}`" for d in work_dirs)}.', '']
    lines += paired_table(table) + ['', PAIRED_NOTE]
    return '\n'.join(lines) + '\n'


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('work_dirs', nargs='+', help='tools/run_experiment.py --work-dir')
    p.add_argument('--out', required=True, help='folder for pooled.{json,md}')
    return p.parse_args()


def main():
    args = parse_args()
    runs, seeds = load_pooled(args.work_dirs)
    table = summarize(runs, seeds)
    md = to_markdown(table, args.work_dirs, seeds)
    os.makedirs(args.out, exist_ok=True)
    write_atomic(osp.join(args.out, 'pooled.md'), md)
    write_atomic(osp.join(args.out, 'pooled.json'), json.dumps(
        dict(work_dirs=args.work_dirs, seeds=seeds, runs=runs, summary=table), indent=2))
    print(md + f'\nwritten to {args.out}/pooled.{{json,md}}')


if __name__ == '__main__':
    main()
