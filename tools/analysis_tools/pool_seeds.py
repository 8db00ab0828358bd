"""Pool the paired seeds of several ``tools/run_experiment.py`` work directories.

Seeds of one experiment are often trained in several work directories (other
runs on a CPU of the same kernel set). This tool reads every seed whose
baseline and GAN runs both finished in each directory, checks that all runs of a
model trained the same config up to the seed (and the same split files), refuses a
seed found in two directories, and writes the table of ``run_experiment.py`` over
the union of the seeds: each side's mean ± sample standard deviation, the per-seed
GAN - baseline, its mean ± sd, 95% t interval and paired t-test, to ``pooled.{json,md}`` in
``--out``, and ``pooled.png``: per metric the per-seed differences, their mean and
its 95% interval (with ``--target``, a line at the effect to detect). Example::

    python tools/analysis_tools/pool_seeds.py work_dirs/exp_glas_400_paired \
        work_dirs/exp_glas_400_paired_more --out work_dirs/glas_400_pooled

An input may also be the ``results.json`` a work dir's table was written to (e.g. one
kept from another machine, such as those under ``projects/gan_mask_rcnn/results/``):
its seeds pool when its experiment arguments (data set, iterations, image scale,
split, ``--options``, ``--gan-options``, ``--exact-resume``) equal those of every
other input's ``results.json``. Seeds trained in other kernel environments (see
``gan_mask_rcnn_lab.run_records``) are refused unless ``--mixed-kernels`` is given.
"""
import argparse
import glob
import json
import os
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence, Tuple

from gan_mask_rcnn_lab.experiment_tables import PAIRED_NOTE, paired_table, summarize
from gan_mask_rcnn_lab.run_records import (check_same_splits, comparable_config,
                                           config_difference, environments_by_label,
                                           finished_run, read, run_environments, write_atomic)

MODELS = ('baseline', 'gan')
# the metrics of the figure, one panel each, and those a --target line is drawn on
PLOT_METRICS = ('segm_mAP', 'boundary_mAP', 'bbox_mAP')
TARGET_METRICS = ('segm_mAP', 'boundary_mAP')
# the run_experiment.py arguments that make two tables the same experiment
EXPERIMENT_ARGS = ('dataset', 'iters', 'image_scale', 'val_fraction', 'options',
                   'gan_options', 'exact_resume')


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


def saved_pairs(table: dict) -> Dict[int, Dict[str, dict]]:
    """``{seed: {model: test metrics}}`` of the seeds a loaded ``results.json``
    tabulated."""
    return {int(seed): {m: table['runs'][m][str(seed)] for m in MODELS}
            for seed in table['seeds_done']}


def experiment_args(source: str, tables: Dict[str, dict]) -> Optional[dict]:
    """The ``EXPERIMENT_ARGS`` of a loaded ``results.json`` input (``tables``) or of
    the one in a work dir; None for a work dir whose table was never written."""
    if source in tables:
        args = tables[source]['args']
    else:
        path = osp.join(source, 'results.json')
        if not osp.exists(path):
            return None
        args = json.loads(read(path))['args']
    return {key: args.get(key) for key in EXPERIMENT_ARGS}


def check_experiment_args(sources: Sequence[str], tables: Dict[str, dict]) -> None:
    """Stop unless every input's experiment arguments agree (needed once a
    ``results.json`` is pooled: it keeps no run configs to compare)."""
    if not tables:
        return
    first = None
    for source in sources:
        args = experiment_args(source, tables)
        if args is None:
            raise SystemExit(f'{source} has no results.json to compare with the tables '
                             'pooled beside it: write it with run_experiment.py (the same '
                             'command reads the finished runs)')
        if first is None:
            first = source, args
        elif args != first[1]:
            keys = [k for k in EXPERIMENT_ARGS if args[k] != first[1][k]]
            raise SystemExit(f'{source} and {first[0]} are other experiments (they differ '
                             f'in {", ".join(keys)}), so their seeds do not pool')


def load_pooled(sources: Sequence[str], mixed_kernels: bool = False
                ) -> Tuple[Dict[str, dict], List[int], Dict[str, Optional[list]]]:
    """Test metrics of the finished seeds of every work dir or ``results.json``,
    checked to pool.

    Returns:
        tuple[dict, list[int], dict]: ``{'baseline': {seed: metrics}, 'gan': {...}}``
        (the layout of ``experiment_tables.summarize``), the sorted seeds and
        ``{'<source>: <model>_seed<seed>': run_environments}``.
    """
    sources = [osp.abspath(s) for s in sources]
    missing = [s for s in sources if not osp.exists(s)]
    if missing:
        raise SystemExit(f'no such work dir or results.json: {", ".join(missing)}')
    dirs = [s for s in sources if osp.isdir(s)]
    if dirs:
        check_same_splits(dirs)
    # the results.json inputs, each read once
    tables = {s: json.loads(read(s)) for s in sources if s not in dirs}
    check_experiment_args(sources, tables)
    runs = {m: {} for m in MODELS}
    owner, refs, envs = {}, {}, {}  # refs: model -> (run dir, its seedless config)
    for source in sources:
        table = tables.get(source)
        pairs = finished_pairs(source) if table is None else saved_pairs(table)
        if not pairs:
            raise SystemExit(f'{source} holds no seed with both runs finished (test metrics '
                             'and wall_seconds.txt): finish them with run_experiment.py')
        for seed, metrics in sorted(pairs.items()):
            if seed in owner:
                raise SystemExit(f'seed {seed} is in {owner[seed]} and in {source}: pool '
                                 'each seed once (leave one input out or move the runs)')
            owner[seed] = source
            for model in MODELS:
                run = f'{model}_seed{seed}'
                runs[model][seed] = metrics[model]
                if table is not None:
                    envs[f'{source}: {run}'] = (table.get('environments') or {}).get(run)
                    continue
                run_dir = osp.join(source, run)
                envs[f'{source}: {run}'] = run_environments(run_dir)
                if model not in refs:
                    refs[model] = run_dir, seedless_config(run_dir, run_dir)
                ref_dir, ref_cfg = refs[model]
                difference = config_difference(ref_cfg, seedless_config(run_dir, ref_dir),
                                               ref_dir, run_dir)
                if difference:
                    raise SystemExit(f'{run_dir} trained another config than {ref_dir}, '
                                     f'so their seeds do not pool:\n{difference}')
    recorded = [label for label in environments_by_label(envs) if label != 'unrecorded']
    if len(recorded) > 1 and not mixed_kernels:
        raise SystemExit('the runs trained in other kernel environments ('
                         + '; '.join(recorded) + '), whose float sums round differently: '
                         'pool them only knowingly, with --mixed-kernels')
    return runs, sorted(owner), envs


def to_markdown(table: dict, sources: Sequence[str], seeds: List[int],
                envs: Dict[str, Optional[list]]) -> str:
    lines = [f'Seeds {seeds} pooled from {", ".join(f"`{d}`" for d in sources)}.', '']
    lines += paired_table(table) + ['', PAIRED_NOTE, '', 'Kernel environments: ' + '; '.join(
        f'{label} ({len(runs)} runs)' for label, runs in environments_by_label(envs).items())
        + '.']
    return '\n'.join(lines) + '\n'


def plot_differences(table: dict, seeds: List[int], keys: Sequence[str] = PLOT_METRICS,
                     target: Optional[float] = None):
    """One panel per metric of ``keys`` found in a ``summarize`` table: each seed's GAN -
    baseline (a dot above its seed), their mean and its 95% t interval, a line at zero and,
    given, a dashed line at ``target`` on the panels of ``TARGET_METRICS``.

    Returns:
        matplotlib.figure.Figure: The figure; per panel the seeds' dots are its first
        collection (x: the seed's slot, y: its difference in AP points).
    """
    from matplotlib.figure import Figure  # no pyplot: no backend, nothing to close
    keys = [k for k in keys if k in table]
    fig = Figure(figsize=(3.2 * len(keys), 3.4))
    axes = fig.subplots(1, len(keys), squeeze=False)
    for ax, key in zip(axes[0], keys):
        row = table[key]
        diffs = [row['per_seed'][str(s)] for s in seeds]
        slots = list(range(len(seeds)))
        ax.scatter(slots, diffs, color='tab:blue', zorder=3, label='per seed')
        mean = len(seeds) + 0.5
        low, high = row['diff_ci95'] or (row['diff'][0], row['diff'][0])
        ax.errorbar([mean], [row['diff'][0]], yerr=[[row['diff'][0] - low],
                    [high - row['diff'][0]]], fmt='D', color='black', capsize=4,
                    label='mean, 95% interval')
        ax.axhline(0, color='grey', lw=0.8)
        if target is not None and key in TARGET_METRICS:
            ax.axhline(target, color='tab:red', ls='--', lw=1, label=f'target {target:+g}')
        ax.set_xticks(slots + [mean], [str(s) for s in seeds] + ['mean'], fontsize=8)
        ax.set_title(key.replace('_mAP', ' AP').replace('boundary', 'Boundary'))
        ax.set_xlabel('seed')
    axes[0][0].set_ylabel('GAN - baseline (AP points)')
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc='lower center', ncol=3,
               fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))  # room for the legend below the panels
    return fig


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('sources', nargs='+', metavar='WORK_DIR_OR_RESULTS_JSON',
                   help='tools/run_experiment.py --work-dir, or a results.json it wrote')
    p.add_argument('--out', required=True, help='folder for pooled.{json,md}')
    p.add_argument('--target', type=float, default=None,
                   help='draw a line at this GAN - baseline difference (AP points)')
    p.add_argument('--mixed-kernels', action='store_true',
                   help='pool runs trained in other kernel environments as well')
    return p.parse_args()


def main():
    args = parse_args()
    runs, seeds, envs = load_pooled(args.sources, args.mixed_kernels)
    table = summarize(runs, seeds)
    md = to_markdown(table, args.sources, seeds, envs)
    os.makedirs(args.out, exist_ok=True)
    write_atomic(osp.join(args.out, 'pooled.md'), md)
    write_atomic(osp.join(args.out, 'pooled.json'), json.dumps(
        dict(sources=args.sources, seeds=seeds, runs=runs, summary=table,
             environments=envs), indent=2))
    plot_differences(table, seeds, target=args.target).savefig(
        osp.join(args.out, 'pooled.png'), dpi=120)
    print(md + f'\nwritten to {args.out}/pooled.{{json,md,png}}')


if __name__ == '__main__':
    main()
