"""Baseline vs GAN Mask R-CNN over several seeds: train, test, tabulate.

For each seed, trains the baseline and the GAN CPU config of a data set with the
same data, schedule and seed (`mim train mmdet`), evaluates both on the test split
(`mim test mmdet`, bbox / segm / Boundary AP) and writes ``results.json`` and
``results.md``: mean and standard deviation over seeds and the paired
GAN-minus-baseline differences with their 95% interval. Every step is resumable:
re-running the same command skips finished runs and resumes cut-off trainings from
their checkpoints, so it is safe to run in the background (a run's ``config.py`` is
its record and is never rewritten: a cut-off run is not resumed under another
config, and each run keeps the kernel environments it trained in,
``environment.json``)::

    nohup python tools/run_experiment.py --dataset glas --seeds 0 1 2 --iters 1000 \
        > work_dirs/exp_glas.log 2>&1 &

The ``glas`` preset reads GlaS-cc from ``data/glas_cc``, or from the folder that the
environment variable ``GLAS_CC_ROOT`` or ``--data-root`` names.

Any COCO-format data set instead of a preset: ``--data-root``, ``--train-ann``,
``--test-ann`` (relative to the root or absolute), ``--img-prefix`` and
``--classes`` (default: every category of the training file); it trains the R18
CPU pair of the shapes set (or ``--configs BASELINE GAN``) as ``CheckedCocoDataset``
(mmdet's ``CocoDataset`` that checks files and classes at start) with these classes::

    python tools/run_experiment.py --data-root data/cells --img-prefix images/ \
        --train-ann annotations/train.json --test-ann annotations/val.json \
        --classes cell --seeds 0 --iters 300

``--val-fraction`` carves a validation split out of the training set (tuning the
adversarial side must not look at the test split); ``--gan-options`` changes GAN
config keys, e.g. ``model.adv_start_fraction=0.5
model.roi_head.mask_discriminator.loss_weight=1.0``.
``--baseline-from`` reads the baselines of an earlier experiment that differs only
in ``--gan-options`` (checked config by config), so a tuning step trains the GAN
side only. A resumed training is a valid training but, without ``--exact-resume``,
not the uninterrupted one: MMEngine restarts the random stream on resume.
"""
import argparse
import json
import os
import os.path as osp
import tempfile
import time

import numpy as np
from mmengine.config import Config, DictAction

from gan_mask_rcnn_lab.coco_files import carve_val, describe_data, own_classes
from gan_mask_rcnn_lab.data_roots import GLAS_CC_ENV, glas_cc_missing, glas_cc_root
from gan_mask_rcnn_lab.config_utils import (rescale_schedule, set_classes, set_data_root,
                                            set_image_scale)
from gan_mask_rcnn_lab.experiment_tables import PAIRED_NOTE, paired_table, summarize
from gan_mask_rcnn_lab.mim_runs import (dump_run_config, final_checkpoint, mim_test, mim_train,
                                        train_wall_seconds)
from gan_mask_rcnn_lab.run_records import (SPLIT_FILES, comparable_config, config_difference,
                                           environment_note, finished_run, read,
                                           record_environment, run_environments, write_atomic)
from gan_mask_rcnn_lab.synthetic_shapes import ensure_splits

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CFG_DIR = osp.join(REPO, 'configs', 'gan_mask_rcnn')
# presets; root None: $GLAS_CC_ROOT, else data/glas_cc; --data-root overrides either
DATASETS = dict(
    glas=dict(root=None, img_prefix='images/',
              train='annotations/train.json', test='annotations/test.json'),
    shapes=dict(root=osp.join(REPO, 'data', 'shapes'), img_prefix='',
                train='annotations/train.json', test='annotations/val.json'))
# the config pair a user's own COCO data set trains (R18-FPN from scratch, CPU-sized)
OWN_DATA_CONFIGS = ('mask-rcnn_r18_fpn_shapes-cpu.py', 'gan-mask-rcnn_r18_fpn_shapes-cpu.py')


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--dataset', choices=sorted(DATASETS),
                   help='a preset data set; or give --data-root and the files below')
    p.add_argument('--data-root', default=None,
                   help="a COCO-format data set's folder; with --dataset, where the preset "
                   f'lives (glas: default ${GLAS_CC_ENV}, else data/glas_cc)')
    p.add_argument('--train-ann', default=None, help='training annotations (COCO json)')
    p.add_argument('--test-ann', default=None, help='test annotations (COCO json)')
    p.add_argument('--img-prefix', default='', help='image folder under --data-root')
    p.add_argument('--classes', nargs='+', default=None,
                   help='classes to train (default: every category of --train-ann)')
    p.add_argument('--configs', nargs=2, default=None, metavar=('BASELINE', 'GAN'),
                   help='the config pair to train (default: the R18 CPU pair of the '
                   'data set)')
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
    args = p.parse_args()
    own = [args.data_root, args.train_ann, args.test_ann]
    if args.dataset and (args.train_ann or args.test_ann):
        p.error('give either --dataset or --data-root/--train-ann/--test-ann, not both '
                '(--data-root alone moves a --dataset preset)')
    if not args.dataset and not all(own):
        p.error('give --dataset, or --data-root, --train-ann and --test-ann of a COCO-format '
                'data set')
    return args


def dataset_spec(args) -> dict:
    """Where the data lives (``root``, ``img_prefix``, ``train``, ``test``), which
    config pair trains it (``configs``) and, for a user's own data set, its
    ``classes``, checked against the training file's categories."""
    if args.dataset:
        ds = dict(DATASETS[args.dataset], classes=None)
        if args.data_root:
            ds['root'] = osp.abspath(args.data_root)
        elif ds['root'] is None:
            ds['root'] = glas_cc_root(REPO)
        if args.dataset == 'glas' and glas_cc_missing(ds['root']):
            raise SystemExit(glas_cc_missing(ds['root']))
        configs = [osp.join(CFG_DIR, f'{prefix}_r18_fpn_{args.dataset}-cpu.py')
                   for prefix in ('mask-rcnn', 'gan-mask-rcnn')]
    else:
        ds = dict(root=osp.abspath(args.data_root), img_prefix=args.img_prefix,
                  train=args.train_ann, test=args.test_ann,
                  classes=own_classes(osp.join(args.data_root, args.train_ann), args.classes))
        configs = [osp.join(CFG_DIR, name) for name in OWN_DATA_CONFIGS]
    ds['configs'] = dict(zip(('baseline', 'gan'), args.configs or configs))
    return ds


def to_markdown(table, args, walls, seeds):
    lines = [f'Dataset `{args.dataset or args.data_root}` ({describe_data(args.data_root, args.train_ann, args.test_ann)}), '
             f'{args.iters} iterations, '
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
    lines += ['', PAIRED_NOTE + ' Mean wall time per run (train + test): '
              + ', '.join(f'{k} {np.mean(v) / 60:.1f} min' for k, v in walls.items())]
    return '\n'.join(lines) + '\n'


def write_results(work, args, runs, walls, seeds):
    """Write ``results.json`` / ``results.md`` for the finished ``seeds``; return the md."""
    table = summarize(runs, seeds)
    envs = {f'{m}_seed{s}': run_environments(osp.join(
        args.baseline_from if m == 'baseline' and args.baseline_from else work,
        f'{m}_seed{s}')) for s in seeds for m in ('baseline', 'gan')}
    write_atomic(osp.join(work, 'results.json'), json.dumps(
        dict(args=vars(args), seeds_done=seeds, runs=runs, summary=table,
             environments=envs), indent=2))
    md = to_markdown(table, args, walls, seeds) + '\n' + environment_note(envs) + '\n'
    write_atomic(osp.join(work, 'results.md'), md)
    return md


def build_config(args, model: str, ds: dict) -> Config:
    """The config of ``model`` ('baseline' or 'gan') with this command's data,
    classes, schedule, image scale and overrides (the seed is set by
    ``dump_run_config``)."""
    cfg = Config.fromfile(ds['configs'][model])
    rescale_schedule(cfg, args.iters, checkpoint_interval=max(50, args.iters // 10))
    set_data_root(cfg, ds['root'], args.train_ann, args.test_ann, ds['img_prefix'])
    if ds['classes']:
        set_classes(cfg, ds['classes'])
    if args.image_scale:
        set_image_scale(cfg, args.image_scale)
    cfg.merge_from_dict(args.options)
    if model == 'gan':
        cfg.merge_from_dict(args.gan_options)
    if args.exact_resume:
        cfg.train_cfg.update(type='ReseedIterBasedTrainLoop', reseed_every_iter=True)
    return cfg


def command_config(cfg: Config, seed: int) -> dict:
    """``comparable_config`` of the run config this command writes for ``cfg``."""
    with tempfile.TemporaryDirectory() as tmp:
        return comparable_config(dump_run_config(cfg, osp.join(tmp, 'config.py'), seed))


def run_config(cfg: Config, run_dir: str, seed: int, trained: bool) -> str:
    """Write ``cfg`` as the run's ``config.py`` unless the run has one: that file is
    the record of what the run trained, so a re-run keeps it. If ``cfg`` differs
    from it, a finished run is only read (with a warning), and a cut-off run stops:
    resuming it with another config would mix two trainings.

    Returns:
        str: The path of the run's config.
    """
    cfg_file = osp.join(run_dir, 'config.py')
    if not osp.exists(cfg_file):
        return dump_run_config(cfg, cfg_file, seed)
    ours = command_config(cfg, seed)
    difference = config_difference(comparable_config(cfg_file), ours, cfg_file,
                                   'this command')
    if difference and not trained:
        raise SystemExit(f'{run_dir} was started with another config than this command '
                         'would resume it with (use another --work-dir, or delete the run '
                         f'to train it anew):\n{difference}')
    if difference:
        print(f'[experiment] warning: {run_dir} finished with another config than this '
              f'command would train; reading it as it is:\n{difference}', flush=True)
    return cfg_file


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
    for name in SPLIT_FILES if args.val_fraction else ():
        our_split, their_split = osp.join(work, name), osp.join(src, name)
        if not osp.exists(their_split) or read(their_split) != read(our_split):
            raise SystemExit(f'--baseline-from: {their_split} differs from {our_split} '
                             '(another --val-fraction or data set)')
    ours = command_config(cfg, seed)
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
    ds = dataset_spec(args)
    args.data_root = ds['root']  # recorded in results.json
    name = args.dataset or osp.basename(osp.normpath(args.data_root))
    # absolute: the split files of --val-fraction go into configs whose data_root
    # mmdet joins with every relative ann_file
    work = osp.abspath(args.work_dir or osp.join(REPO, 'work_dirs', f'exp_{name}'))
    os.makedirs(work, exist_ok=True)
    if args.dataset == 'shapes':
        ensure_splits(ds['root'], ds['test'])
    train_ann, test_ann = ds['train'], ds['test']
    if args.val_fraction:
        train_ann, test_ann = carve_val(ds['root'], ds['train'], args.val_fraction, work)
    args.train_ann, args.test_ann = train_ann, test_ann  # recorded in results.json
    runs = {'baseline': {}, 'gan': {}}
    walls = {}
    others = [m for m in ('baseline', 'gan')  # models another process trains
              if m not in args.models and not (m == 'baseline' and args.baseline_from)]
    for seed in args.seeds:
        for model in ('baseline', 'gan'):
            run_dir = osp.join(work, f'{model}_seed{seed}')
            wall_file = osp.join(run_dir, 'wall_seconds.txt')
            if model == 'baseline' and args.baseline_from:
                runs[model][seed], wall = borrowed_baseline(
                    args, seed, build_config(args, model, ds), work)
                walls.setdefault(model, []).append(wall)
                continue
            if model not in args.models:  # another process's: read below
                continue
            trained = osp.exists(final_checkpoint(run_dir, args.iters))
            cfg_file = run_config(build_config(args, model, ds), run_dir, seed, trained)
            print(f'[experiment] {model} seed {seed}: {args.iters} iterations', flush=True)
            if not trained:
                record_environment(run_dir)  # this process trains (part of) it
            ckpt = mim_train(cfg_file, run_dir, args.iters, osp.join(run_dir, 'train.log'))
            start = time.time()
            runs[model][seed] = mim_test(cfg_file, ckpt, osp.join(run_dir, 'test'),
                                         osp.join(run_dir, 'test.log'))
            if not osp.exists(wall_file):  # first completion: every part of a resumed training
                with open(wall_file, 'w') as f:
                    f.write(f'{train_wall_seconds(run_dir) + time.time() - start:.0f}\n')
            walls.setdefault(model, []).append(float(read(wall_file)))
            print(f'[experiment] {model} seed {seed}: segm_mAP '
                  f'{runs[model][seed].get("segm_mAP")}', flush=True)
        # another process's runs of this seed, read after ours trained, so that
        # whichever of two processes finishes last writes the paired table
        for model in others:
            finished = finished_run(osp.join(work, f'{model}_seed{seed}'))
            if finished is not None:
                runs[model][seed], wall = finished
                walls.setdefault(model, []).append(wall)
        # tables so far, rewritten after every seed: an interrupted run keeps them
        done = [s for s in args.seeds[:args.seeds.index(seed) + 1]
                if s in runs['baseline'] and s in runs['gan']]
        if done:
            print(write_results(work, args, runs, walls, done))


if __name__ == '__main__':
    main()
