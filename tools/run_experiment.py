"""Baseline vs GAN Mask R-CNN over several seeds: train, test, tabulate (issue 7).

For each seed, trains the baseline and the GAN CPU config of a data set with the
same data, schedule and seed (`mim train mmdet`), evaluates both on the test split
(`mim test mmdet`, bbox / segm / Boundary AP) and writes ``results.json`` and
``results.md``: mean and standard deviation over seeds and the paired
GAN-minus-baseline differences. Every step is resumable: re-running the same
command skips finished runs and resumes cut-off trainings from their checkpoints,
so it is safe to run in the background::

    nohup python tools/run_experiment.py --dataset glas --seeds 0 1 2 --iters 1000 \
        > work_dirs/exp_glas.log 2>&1 &

``--val-fraction`` carves a validation split out of the training set (tuning the
adversarial side must not look at the test split); ``--gan-options`` changes GAN
config keys, e.g. ``train_cfg.adv_start_iter=200 model.roi_head.mask_adv_weight=1.0``.
``--baseline-from`` reads the baselines of an earlier experiment that differs only
in ``--gan-options`` (checked config by config), so a tuning step trains the GAN
side only. A resumed training is a valid training but, without ``--exact-resume``,
not the uninterrupted one: MMEngine restarts the random stream on resume.
"""
import argparse
import difflib
import json
import os
import os.path as osp
import tempfile
import time
from typing import List

import numpy as np
from filelock import FileLock
from scipy import stats
from mmengine.config import Config, DictAction

from gan_mask_rcnn.config_utils import rescale_schedule, set_data_root, set_image_scale
from gan_mask_rcnn.mim_runs import (dump_run_config, latest_metrics, mim_test, mim_train,
                                     train_wall_seconds)
from gan_mask_rcnn.synthetic_shapes import generate_splits

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CFG_DIR = osp.join(REPO, 'configs', 'gan_mask_rcnn')
DATASETS = dict(
    glas=dict(root=osp.join(REPO, '..', 'shared', 'data', 'glas_cc'), img_prefix='images/',
              train='annotations/train.json', test='annotations/test.json'),
    shapes=dict(root=osp.join(REPO, 'data', 'shapes'), img_prefix='',
                train='annotations/train.json', test='annotations/val.json'))
# set by `mim train mmdet` (mmdet's tools/train.py: --work-dir, --launcher, --resume)
RUN_KEYS = ('work_dir', 'launcher', 'resume')
METRICS = ['bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75', 'segm_mAP', 'segm_mAP_50',
           'segm_mAP_75', 'boundary_mAP', 'boundary_mAP_50', 'boundary_mAP_75']


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--dataset', choices=sorted(DATASETS), required=True)
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--iters', type=int, default=1000)
    p.add_argument('--models', nargs='+', choices=['baseline', 'gan'],
                   default=['baseline', 'gan'],
                   help='train and test only these (e.g. the two sides of one seed in '
                   'two processes); the table reads every finished run')
    p.add_argument('--work-dir', default=None)
    p.add_argument('--image-scale', type=int, nargs=2, default=None, metavar=('W', 'H'),
                   help='Resize scale of all pipelines (keep_ratio), e.g. 288 192')
    p.add_argument('--val-fraction', type=float, default=0.0,
                   help='evaluate on this fraction of train (held out), not on test')
    p.add_argument('--gan-options', nargs='+', action=DictAction, default={},
                   help='config overrides for the GAN side only')
    p.add_argument('--options', nargs='+', action=DictAction, default={},
                   help='config overrides for both sides')
    p.add_argument('--baseline-from', default=None, metavar='WORK_DIR',
                   help='read the finished baselines of these seeds from this earlier '
                   'experiment instead of training them (its baseline configs must equal '
                   "this command's: same data, split, iterations, scale and --options)")
    p.add_argument('--exact-resume', action='store_true',
                   help='reseed from (seed, iteration) before every batch, so that a run '
                   'cut off and resumed equals its uninterrupted run (without it, '
                   'MMEngine restarts the random stream on resume: a valid but other '
                   'training); changes the random draws, so such runs are not the '
                   'same trainings as runs without it')
    return p.parse_args()


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def write_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``: the two
    processes of one seed (``--models``) rewrite the split and result files while the
    other's training or test may be reading them, and must never see half a file."""
    tmp = f'{path}.{os.getpid()}.tmp'
    with open(tmp, 'w') as f:
        f.write(text)
    os.replace(tmp, path)


def ensure_shapes(root: str, test_ann: str) -> None:
    """Generate the synthetic set under ``root`` unless ``test_ann`` (written last) is
    there; under a file lock, so that the two processes of a seed that both find it
    missing generate it once."""
    os.makedirs(osp.dirname(root), exist_ok=True)
    with FileLock(root + '.lock'):
        if not osp.exists(osp.join(root, test_ann)):
            # the set `make data` and `make demo` write, so the commands share it
            generate_splits(root)


def carve_val(root: str, train_ann: str, fraction: float, out_dir: str):
    """Split the training annotations into train/val files (seed 0, by image)."""
    with open(osp.join(root, train_ann)) as f:
        coco = json.load(f)
    ids = sorted(img['id'] for img in coco['images'])
    rng = np.random.default_rng(0)
    val_ids = set(rng.choice(ids, max(1, round(fraction * len(ids))), replace=False).tolist())
    paths = {}
    for name, keep in (('train', lambda i: i not in val_ids), ('val', lambda i: i in val_ids)):
        part = dict(coco, images=[im for im in coco['images'] if keep(im['id'])],
                    annotations=[a for a in coco['annotations'] if keep(a['image_id'])])
        paths[name] = osp.join(out_dir, f'{name}_split.json')
        write_atomic(paths[name], json.dumps(part))
    return paths['train'], paths['val']


def summarize(runs, seeds):
    """Mean/std per model and the paired difference for every metric present."""
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
        paired = None
        if len(seeds) > 1 and diff.std() > 0:
            test = stats.ttest_rel(gan, base)
            paired = [float(test.statistic), float(test.pvalue)]
        table[key] = dict(baseline=[float(base.mean()), std(base)],
                          gan=[float(gan.mean()), std(gan)],
                          diff=[float(diff.mean()), std(diff)],
                          per_seed=dict(zip(map(str, seeds), diff.round(2).tolist())),
                          paired_t=paired)
    return table


def describe_data(args) -> str:
    """Image counts and sizes of the annotations trained and evaluated on (the
    held-out split's with ``--val-fraction``), e.g. for the shapes set, which other
    commands may have generated at another size."""
    ds = DATASETS[args.dataset]
    parts = []
    for split, ann in (('train', args.train_ann), ('evaluated', args.test_ann)):
        with open(osp.join(ds['root'], ann)) as f:
            images = json.load(f)['images']
        sizes = sorted({f"{im['width']}x{im['height']}" for im in images})
        parts.append(f'{split} {len(images)} images, '
                     + (sizes[0] if len(sizes) == 1 else f'{len(sizes)} sizes'))
    return '; '.join(parts)


def metric_rows(table: dict, extra=None) -> List[str]:
    """Markdown rows of a ``summarize`` table, one per metric: both sides
    (mean ± sd), their difference, the per-seed differences, ``extra(row)``'s
    cells if given, and the paired t-test."""

    def cell(mean_std, sign=''):
        mean, std = mean_std
        return f'{mean:{sign}.1f}' + ('' if std is None else f' ± {std:.1f}')

    return [f'| {key} | {cell(row["baseline"])} | {cell(row["gan"])} | '
            f'{cell(row["diff"], "+")} | '
            + ', '.join(f'{v:+.1f}' for v in row['per_seed'].values()) + ' | '
            + ''.join(f'{c} | ' for c in (extra(row) if extra else []))
            + ('-' if row['paired_t'] is None else
               '{:+.2f} ({:.2f})'.format(*row['paired_t'])) + ' |'
            for key, row in table.items()]


PAIRED_NOTE = ('mean ± sample standard deviation over seeds, AP in %; paired t: GAN vs '
               'baseline over seeds, two-sided p.')


def paired_table(table: dict) -> List[str]:
    """Markdown header and rows of a ``summarize`` table (baseline, GAN, their
    difference, per seed and the paired t-test); ``PAIRED_NOTE`` explains it."""
    return ['| metric | baseline | GAN | GAN - baseline | per seed (GAN - baseline) '
            '| paired t (p) |', '|---|---|---|---|---|---|'] + metric_rows(table)


def to_markdown(table, args, walls, seeds):
    lines = [f'Dataset `{args.dataset}` ({describe_data(args)}), {args.iters} iterations, '
             f'seeds {seeds}, evaluated on '
             f'{"a held-out part of train" if args.val_fraction else "the test split"}.'
             + (f' Images resized to fit {args.image_scale[0]}x{args.image_scale[1]}.'
                if args.image_scale else '')
             + ''.join(f' {label}: {", ".join(f"{k}={v}" for k, v in opts.items())}.'
                       for label, opts in (('Both sides', args.options),
                                           ('GAN side', args.gan_options)) if opts)
             + (f' Baselines read from `{args.baseline_from}`.' if args.baseline_from
                else '')
             + (' Reseeded before every batch (`--exact-resume`).' if args.exact_resume
                else ''),
             '']
    lines += paired_table(table)
    lines += ['', PAIRED_NOTE + ' Mean wall time per run (train + test, 2-core CPU): '
              + ', '.join(f'{k} {np.mean(v) / 60:.1f} min' for k, v in walls.items())]
    return '\n'.join(lines) + '\n'


def write_results(work, args, runs, walls, seeds):
    """Write ``results.json`` / ``results.md`` for the finished ``seeds``; return the md."""
    table = summarize(runs, seeds)
    write_atomic(osp.join(work, 'results.json'), json.dumps(
        dict(args=vars(args), seeds_done=seeds, runs=runs, summary=table), indent=2))
    md = to_markdown(table, args, walls, seeds)
    write_atomic(osp.join(work, 'results.md'), md)
    return md


def build_config(args, model: str, ds: dict) -> Config:
    """The CPU config of ``model`` ('baseline' or 'gan') with this command's data,
    schedule, image scale and overrides (the seed is set by ``dump_run_config``)."""
    prefix = 'mask-rcnn' if model == 'baseline' else 'gan-mask-rcnn'
    cfg = Config.fromfile(osp.join(CFG_DIR, f'{prefix}_r18_fpn_{args.dataset}-cpu.py'))
    rescale_schedule(cfg, args.iters, checkpoint_interval=max(50, args.iters // 10))
    set_data_root(cfg, ds['root'], args.train_ann, args.test_ann, ds['img_prefix'])
    if args.image_scale:
        set_image_scale(cfg, args.image_scale)
    cfg.merge_from_dict(args.options)
    if model == 'gan':
        cfg.merge_from_dict(args.gan_options)
    if args.exact_resume:  # GANIterBasedTrainLoop reseeds as well
        if model == 'baseline':
            cfg.train_cfg.type = 'ReseedIterBasedTrainLoop'
        cfg.train_cfg.reseed_every_iter = True
    return cfg


def replace_in_strings(obj, old: str, new: str):
    """``obj`` (nested dicts, lists, tuples) with ``old`` replaced by ``new`` in every string."""
    if isinstance(obj, str):
        return obj.replace(old, new)
    if isinstance(obj, dict):
        return {k: replace_in_strings(v, old, new) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(replace_in_strings(v, old, new) for v in obj)
    return obj


def comparable_config(cfg_file: str, old: str = '', new: str = '') -> dict:
    """The run config in ``cfg_file`` as a dict that two runs of the same config share:
    paths into the run's work dir ``old`` replaced by ``new``, and without the keys
    that mmdet's tools/train.py sets from its command line when MMEngine's runner
    re-dumps the config (``work_dir``, ``launcher``, ``resume``; ``load_from`` of a
    resumed run, which it sets to None whatever the run started from).

    Compared as loaded dicts, not as text: the dumped text wraps lines by their
    length, and the paths into two work dirs differ in length.
    """
    cfg = Config.fromfile(cfg_file).to_dict()
    if old:
        cfg = replace_in_strings(cfg, old, new)
    for key in RUN_KEYS + (('load_from',) if cfg.get('resume') else ()):
        cfg.pop(key, None)
    return cfg


def config_difference(a: dict, b: dict, name_a: str, name_b: str) -> str:
    """The first lines of a unified diff of two ``comparable_config`` dicts; '' if equal.

    A resumed run has no ``load_from`` to compare; it is then left out of both.
    """
    if ('load_from' in a) != ('load_from' in b):
        a, b = ({k: v for k, v in c.items() if k != 'load_from'} for c in (a, b))
    if a == b:
        return ''
    diff = difflib.unified_diff(Config(a).pretty_text.splitlines(),
                                Config(b).pretty_text.splitlines(), name_a, name_b,
                                n=2, lineterm='')
    return '\n'.join(list(diff)[:24])


def finished_run(run_dir: str):
    """Test metrics and wall seconds of the run in ``run_dir``; None until it has both."""
    metrics = latest_metrics(osp.join(run_dir, 'test'))
    wall_file = osp.join(run_dir, 'wall_seconds.txt')
    if metrics is None or not osp.exists(wall_file):
        return None
    return metrics, float(read(wall_file))


def check_same_splits(work_dirs: List[str]) -> None:
    """Stop unless the work dirs hold the same held-out split files (or none)."""
    first = work_dirs[0]
    for name in ('train_split.json', 'val_split.json'):
        for other in work_dirs[1:]:
            paths = [osp.join(d, name) for d in (first, other)]
            texts = [read(p) if osp.exists(p) else None for p in paths]
            if texts[0] != texts[1]:
                raise SystemExit(f'{paths[0]} and {paths[1]} differ: the runs were '
                                 'evaluated on other splits')


def borrowed_baseline(args, seed: int, cfg: Config, work: str):
    """Metrics and wall time of the finished baseline of ``seed`` in ``--baseline-from``,
    after checking that it ran ``cfg`` (its split files, if any, standing in for ours
    with the same content).

    Returns:
        tuple[dict, float]: Its test metrics and wall seconds.
    """
    src = osp.abspath(args.baseline_from)
    run_dir = osp.join(src, f'baseline_seed{seed}')
    finished = finished_run(run_dir)
    if finished is None:
        raise SystemExit(f'--baseline-from: {run_dir} holds no finished baseline of seed '
                         f'{seed}; finish it there first (--models baseline)')
    for name in ('train_split.json', 'val_split.json') if args.val_fraction else ():
        our_split, their_split = osp.join(work, name), osp.join(src, name)
        if not osp.exists(their_split) or read(their_split) != read(our_split):
            raise SystemExit(f'--baseline-from: {their_split} differs from {our_split} '
                             '(another --val-fraction or data set)')
    with tempfile.TemporaryDirectory() as tmp:
        ours = comparable_config(dump_run_config(cfg, osp.join(tmp, 'config.py'), seed))
    theirs = comparable_config(osp.join(run_dir, 'config.py'), src, work)
    difference = config_difference(theirs, ours, run_dir, 'this command')
    if difference:
        raise SystemExit(f'--baseline-from: the baseline in {run_dir} was trained with '
                         'another config than this command would use:\n' + difference)
    return finished


def main():
    args = parse_args()
    if args.baseline_from and args.models == ['baseline']:
        raise SystemExit('--baseline-from reads the baselines: nothing to train with '
                         '--models baseline')
    ds = DATASETS[args.dataset]
    # absolute: the split files of --val-fraction go into configs whose data_root
    # mmdet joins with every relative ann_file
    work = osp.abspath(args.work_dir or osp.join(REPO, 'work_dirs', f'exp_{args.dataset}'))
    os.makedirs(work, exist_ok=True)
    if args.dataset == 'shapes':
        ensure_shapes(ds['root'], ds['test'])
    train_ann, test_ann = ds['train'], ds['test']
    if args.val_fraction:
        train_ann, test_ann = carve_val(ds['root'], ds['train'], args.val_fraction, work)
    args.train_ann, args.test_ann = train_ann, test_ann  # recorded in results.json
    runs = {'baseline': {}, 'gan': {}}
    walls = {}
    for seed in args.seeds:
        for model in ('baseline', 'gan'):
            run_dir = osp.join(work, f'{model}_seed{seed}')
            wall_file = osp.join(run_dir, 'wall_seconds.txt')
            if model == 'baseline' and args.baseline_from:
                runs[model][seed], wall = borrowed_baseline(
                    args, seed, build_config(args, model, ds), work)
                walls.setdefault(model, []).append(wall)
                continue
            if model not in args.models:  # another process's: read it if finished
                finished = finished_run(run_dir)
                if finished is not None:
                    runs[model][seed], wall = finished
                    walls.setdefault(model, []).append(wall)
                continue
            cfg_file = dump_run_config(build_config(args, model, ds),
                                       osp.join(run_dir, 'config.py'), seed)
            print(f'[experiment] {model} seed {seed}: {args.iters} iterations', flush=True)
            ckpt = mim_train(cfg_file, run_dir, args.iters, osp.join(run_dir, 'train.log'))
            start = time.time()
            runs[model][seed] = mim_test(cfg_file, ckpt, osp.join(run_dir, 'test'),
                                         osp.join(run_dir, 'test.log'))
            if not osp.exists(wall_file):  # first completion: every session's training
                with open(wall_file, 'w') as f:
                    f.write(f'{train_wall_seconds(run_dir) + time.time() - start:.0f}\n')
            walls.setdefault(model, []).append(float(read(wall_file)))
            print(f'[experiment] {model} seed {seed}: segm_mAP '
                  f'{runs[model][seed].get("segm_mAP")}', flush=True)
        # tables so far, rewritten after every seed: an interrupted run keeps them
        done = [s for s in args.seeds[:args.seeds.index(seed) + 1]
                if s in runs['baseline'] and s in runs['gan']]
        if done:
            print(write_results(work, args, runs, walls, done))


if __name__ == '__main__':
    main()
