"""Seed statistics of a baseline vs GAN experiment and their Markdown rows.

Shared by ``tools/run_experiment.py`` and the tools that re-tabulate its runs
(``tools/analysis_tools/{rerun_spread,pool_seeds,learning_curve}.py``): per model the
mean and sample standard deviation over seeds, the paired GAN - baseline
difference per seed, its mean and sd, the 95% t interval of that mean and the
paired t-test.
"""
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
from scipy import stats

from .markdown import markdown_header, markdown_row

METRICS = ['bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75', 'segm_mAP', 'segm_mAP_50',
           'segm_mAP_75', 'boundary_mAP', 'boundary_mAP_50', 'boundary_mAP_75']
PAIRED_NOTE = ('mean ± sample standard deviation over seeds, AP in %; 95% interval: of the '
               'mean GAN - baseline, mean ± t(0.975, n - 1) · sd / √n over the n seeds; '
               'paired t: GAN vs baseline over seeds, two-sided p.')


def summarize(runs: Dict[str, Dict[int, dict]], seeds: Sequence[int]) -> Dict[str, dict]:
    """Mean/std per model and the paired difference for every metric present.

    Args:
        runs (dict): ``{'baseline': {seed: metrics}, 'gan': {seed: metrics}}``,
            metrics as fractions (COCO's 0-1 scale).
        seeds (Sequence[int]): The seeds to tabulate; both models must have them.

    Returns:
        dict: Per metric key of ``METRICS`` that every run has: ``baseline``,
        ``gan`` and ``diff`` as ``[mean, sd]`` in AP points (sd None for one seed),
        ``per_seed`` ``{str(seed): diff}``, ``diff_ci95`` ``[low, high]``, the
        two-sided 95% Student t interval of the mean difference (None for one seed),
        and ``paired_t`` ``[t, p]`` (None for one seed or a constant difference).
    """
    table = {}
    for key in METRICS:
        if not all(key in runs[m][s] for m in ('baseline', 'gan') for s in seeds):
            continue
        base = np.array([100 * runs['baseline'][s][key] for s in seeds])
        gan = np.array([100 * runs['gan'][s][key] for s in seeds])
        diff = gan - base
        # a sample standard deviation needs two seeds; None (JSON null) for one
        std = (lambda v: float(v.std(ddof=1)) if len(v) > 1 else None)
        # paired t-test over seeds (two-sided); undefined for one seed or equal diffs
        # (equal up to float rounding: COCO's 3-decimal APs give -1.2 as
        # 16.1 - 17.3 on one seed and 14.9 - 16.1 on another, 1e-15 apart)
        paired = None
        if len(seeds) > 1 and np.ptp(diff) > 1e-6:
            test = stats.ttest_rel(gan, base)
            paired = [float(test.statistic), float(test.pvalue)]
        diff_mean, diff_sd = float(diff.mean()), std(diff)
        interval = None
        if len(seeds) > 1:
            half = stats.t.ppf(0.975, len(seeds) - 1) * diff_sd / np.sqrt(len(seeds))
            interval = [diff_mean - half, diff_mean + half]
        table[key] = dict(baseline=[float(base.mean()), std(base)],
                          gan=[float(gan.mean()), std(gan)],
                          diff=[diff_mean, diff_sd],
                          per_seed=dict(zip(map(str, seeds), diff.round(2).tolist())),
                          diff_ci95=interval, paired_t=paired)
    return table


def metric_rows(table: Dict[str, dict],
                extra: Optional[Callable[[dict], List[str]]] = None) -> List[str]:
    """Markdown rows of a ``summarize`` table, one per metric: both sides
    (mean ± sd), their difference, the per-seed differences, ``extra(row)``'s
    cells if given, the 95% interval of the difference and the paired t-test."""

    def cell(mean_std, sign=''):
        mean, std = mean_std
        return f'{mean:{sign}.1f}' + ('' if std is None else f' ± {std:.1f}')

    return [markdown_row(
        [key, cell(row['baseline']), cell(row['gan']), cell(row['diff'], '+'),
         ', '.join(f'{v:+.1f}' for v in row['per_seed'].values())]
        + (extra(row) if extra else [])
        + ['-' if row['diff_ci95'] is None else '{:+.2f} to {:+.2f}'.format(*row['diff_ci95']),
           '-' if row['paired_t'] is None else '{:+.2f} ({:.2f})'.format(*row['paired_t'])])
        for key, row in table.items()]


def paired_table(table: Dict[str, dict]) -> List[str]:
    """Markdown header and rows of a ``summarize`` table (baseline, GAN, their
    difference, per seed, its 95% interval and the paired t-test);
    ``PAIRED_NOTE`` explains it."""
    return markdown_header(['metric', 'baseline', 'GAN', 'GAN - baseline',
                            'per seed (GAN - baseline)', '95% interval', 'paired t (p)']
                           ) + metric_rows(table)
