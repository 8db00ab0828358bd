"""The README's main command (`make demo`): baseline vs GAN Mask R-CNN on synthetic data.

Generates the synthetic shapes set when missing, trains the baseline and the GAN
CPU configs with the same seed, data and iterations through `mim train mmdet`,
evaluates both through `mim test mmdet` (bbox, segm and Boundary AP), prints a
side-by-side table and writes the comparison figure. Each step is a plain user
command, printed before it runs; finished steps are skipped on a re-run, so an
interrupted demo resumes where it stopped.

A work dir keeps the arguments of its demo (``demo_args.json``) and a re-run with
other ``--iters``, ``--size``, ``--seed`` or data stops instead of showing the old
runs' table; the data folder is checked against ``--size``, ``--num-train`` and
``--num-val`` the same way. ``--seed`` seeds the trainings; the data is always the
set ``make data`` writes (seed 0), at the asked size and counts.
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

from mmengine.config import Config

from gan_mask_rcnn_lab.config_utils import rescale_schedule, set_data_root, set_image_scale
from gan_mask_rcnn_lab.markdown import markdown_table
from gan_mask_rcnn_lab.mim_runs import dump_run_config, mim_test, mim_train, run_logged
from gan_mask_rcnn_lab.synthetic_shapes import (DEFAULT_NUM_TRAIN, DEFAULT_NUM_VAL, DEFAULT_SIZE,
                                                generate_splits, set_description)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = dict(
    baseline=osp.join(REPO, 'configs/gan_mask_rcnn/mask-rcnn_r18_fpn_shapes-cpu.py'),
    gan=osp.join(REPO, 'configs/gan_mask_rcnn/gan-mask-rcnn_r18_fpn_shapes-cpu.py'))
KEYS = [('bbox', 'bbox_mAP'), ('bbox', 'bbox_mAP_50'), ('bbox', 'bbox_mAP_75'),
        ('segm', 'segm_mAP'), ('segm', 'segm_mAP_50'), ('segm', 'segm_mAP_75'),
        ('boundary', 'boundary_mAP'), ('boundary', 'boundary_mAP_50'),
        ('boundary', 'boundary_mAP_75')]
# the seed of the demo's data: the set `make data` writes, whatever --seed trains with
DATA_SEED = 0
# the arguments that decide a demo's runs, kept in <work_dir>/demo_args.json
RECORDED = ('iters', 'size', 'seed', 'num_train', 'num_val', 'data')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data', default=None,
                        help='shapes set folder (default data/shapes, or '
                        'data/shapes_<size>px_<train>+<val> for another size or count)')
    parser.add_argument('--work-dir', default=osp.join(REPO, 'work_dirs/demo'))
    parser.add_argument('--iters', type=int, default=150, help='training iterations')
    parser.add_argument('--size', type=int, default=DEFAULT_SIZE,
                        help='image side in pixels (data and network input)')
    parser.add_argument('--seed', type=int, default=0, help='training seed')
    parser.add_argument('--num-train', type=int, default=DEFAULT_NUM_TRAIN)
    parser.add_argument('--num-val', type=int, default=DEFAULT_NUM_VAL)
    args = parser.parse_args()
    if args.data is None:
        default = (args.size, args.num_train, args.num_val) == (
            DEFAULT_SIZE, DEFAULT_NUM_TRAIN, DEFAULT_NUM_VAL)
        args.data = osp.join(REPO, 'data', 'shapes' if default else
                             f'shapes_{args.size}px_{args.num_train}+{args.num_val}')
    args.data, args.work_dir = osp.abspath(args.data), osp.abspath(args.work_dir)
    return args


def check_data(args) -> None:
    """Generate the shapes set in ``args.data`` if it is missing; stop if the folder
    holds a set of another size or image count than this demo asks for."""
    wanted = dict(description=set_description(DATA_SEED, args.size),
                  train=args.num_train, val=args.num_val)
    ann = {split: osp.join(args.data, 'annotations', f'{split}.json')
           for split in ('train', 'val')}
    if not osp.exists(ann['val']):  # written last
        print(f'[demo] generating the synthetic shapes set in {args.data}', flush=True)
        generate_splits(args.data, args.num_train, args.num_val, args.size, DATA_SEED)
    found = {}
    for split, path in ann.items():
        with open(path) as f:
            coco = json.load(f)
        found['description'] = coco.get('info', {}).get('description')
        found[split] = len(coco['images'])
    if found != wanted:
        raise SystemExit(
            f'[demo] {args.data} holds another shapes set ({describe_set(found)}) than this '
            f'demo asks for ({describe_set(wanted)}): pass --data with another folder (the '
            f'set is generated there) or delete {args.data}')


def describe_set(info: dict) -> str:
    """``synthetic shapes, seed 0, size 192; 128 train + 32 val images``."""
    return f"{info['description']}; {info['train']} train + {info['val']} val images"


def check_work_dir(args) -> None:
    """Record this demo's arguments in ``<work_dir>/demo_args.json``; stop if the
    work dir holds the runs of a demo with other arguments (their checkpoints and
    metrics would be reused and their table printed as this one's)."""
    record = {key: getattr(args, key) for key in RECORDED}
    path = osp.join(args.work_dir, 'demo_args.json')
    if osp.exists(path):
        with open(path) as f:
            old = json.load(f)
        if old != record:
            diff = ', '.join(f'--{k.replace("_", "-")} {old.get(k)} (now {v})'
                             for k, v in record.items() if old.get(k) != v)
            raise SystemExit(f'[demo] {args.work_dir} holds a demo run with {diff}: its '
                             'checkpoints and table are not this command\'s. Pass another '
                             f'--work-dir, or delete {args.work_dir} to start over.')
        return
    if any(osp.exists(osp.join(args.work_dir, name)) for name in CONFIGS):
        raise SystemExit(f'[demo] {args.work_dir} holds runs without a record of their '
                         'arguments (an earlier version of the demo): pass another '
                         f'--work-dir, or delete {args.work_dir} to start over.')
    os.makedirs(args.work_dir, exist_ok=True)
    with open(path, 'w') as f:
        json.dump(record, f, indent=2)


def main():
    args = parse_args()
    start = time.time()
    check_data(args)
    check_work_dir(args)
    results = {}
    for step, (name, config) in enumerate(CONFIGS.items()):
        work_dir = osp.join(args.work_dir, name)
        cfg = Config.fromfile(config)
        rescale_schedule(cfg, args.iters, checkpoint_interval=max(50, args.iters // 4))
        set_data_root(cfg, args.data)
        set_image_scale(cfg, args.size)
        cfg_file = dump_run_config(cfg, osp.join(args.work_dir, f'{name}.py'), args.seed)
        print(f'[demo {2 * step + 1}/4] train {name} ({args.iters} iterations, seed {args.seed})',
              flush=True)
        ckpt = mim_train(cfg_file, work_dir, args.iters,
                         osp.join(args.work_dir, f'train_{name}.log'))
        print(f'[demo {2 * step + 2}/4] test {name}', flush=True)
        results[name] = mim_test(cfg_file, ckpt, osp.join(work_dir, 'test'),
                                 osp.join(args.work_dir, f'test_{name}.log'))
    print_table(results, args.iters)
    with open(osp.join(args.work_dir, 'results.json'), 'w') as f:
        json.dump(results, f, indent=2)
    out_dir = osp.join(args.work_dir, 'comparison')
    # reuses the predictions that `mim test` dumped in each work dir
    run_logged([sys.executable, osp.join(REPO, 'tools/analysis_tools/compare_models.py'),
                '--work-dirs', osp.join(args.work_dir, 'baseline'),
                osp.join(args.work_dir, 'gan'), '--names', 'Mask R-CNN', 'GAN Mask R-CNN',
                '--out-dir', out_dir], osp.join(args.work_dir, 'compare.log'))
    print(f'[demo] comparison figures in {out_dir}')
    print(f'[demo] done in {(time.time() - start) / 60:.1f} min; results in {args.work_dir}')


def print_table(results, iters):
    """Print the metrics of both models side by side, and what they can show."""
    names = list(results)
    rows = []
    for _, key in KEYS:
        if not all(results[n] and key in results[n] for n in names):
            continue
        vals = [100 * results[n][key] for n in names]
        rows.append([key] + [f'{v:.1f}' for v in vals] + [f'{vals[-1] - vals[0]:+.1f}'])
    print('\n' + markdown_table(['metric'] + names + ['GAN - baseline'], rows))
    print(f'{iters} iterations from scratch show that the pipeline runs, not the merit of '
          'the method (README, Results).\n')


if __name__ == '__main__':
    main()
