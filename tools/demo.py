"""The README's main command (`make demo`): baseline vs GAN Mask R-CNN on synthetic data.

Generates the synthetic shapes set when missing, trains the baseline and the GAN
CPU configs with the same seed, data and iterations through `mim train mmdet`,
evaluates both through `mim test mmdet` (bbox, segm and Boundary AP), prints a
side-by-side table and writes the comparison figure. Each step is a plain user
command, printed before it runs; finished steps are skipped on a re-run, so an
interrupted demo resumes where it stopped.
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

from mmengine.config import Config

from gan_mask_rcnn.config_utils import rescale_schedule, set_data_root, set_image_scale
from gan_mask_rcnn_lab.mim_runs import dump_run_config, mim_test, mim_train, run_logged
from gan_mask_rcnn_lab.synthetic_shapes import (DEFAULT_NUM_TRAIN, DEFAULT_NUM_VAL, DEFAULT_SIZE,
                                                generate_splits)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = dict(
    baseline=osp.join(REPO, 'configs/gan_mask_rcnn/mask-rcnn_r18_fpn_shapes-cpu.py'),
    gan=osp.join(REPO, 'configs/gan_mask_rcnn/gan-mask-rcnn_r18_fpn_shapes-cpu.py'))
KEYS = [('bbox', 'bbox_mAP'), ('bbox', 'bbox_mAP_50'), ('bbox', 'bbox_mAP_75'),
        ('segm', 'segm_mAP'), ('segm', 'segm_mAP_50'), ('segm', 'segm_mAP_75'),
        ('boundary', 'boundary_mAP'), ('boundary', 'boundary_mAP_50'),
        ('boundary', 'boundary_mAP_75')]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data', default=osp.join(REPO, 'data/shapes'))
    parser.add_argument('--work-dir', default=osp.join(REPO, 'work_dirs/demo'))
    parser.add_argument('--iters', type=int, default=150, help='training iterations')
    parser.add_argument('--size', type=int, default=DEFAULT_SIZE,
                        help='image side in pixels (data and network input)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--num-train', type=int, default=DEFAULT_NUM_TRAIN)
    parser.add_argument('--num-val', type=int, default=DEFAULT_NUM_VAL)
    return parser.parse_args()


def main():
    args = parse_args()
    start = time.time()
    os.makedirs(args.work_dir, exist_ok=True)
    if not osp.exists(osp.join(args.data, 'annotations', 'val.json')):
        print(f'[demo] generating the synthetic shapes set in {args.data}', flush=True)
        generate_splits(args.data, args.num_train, args.num_val, args.size, args.seed)
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
    print_table(results)
    with open(osp.join(args.work_dir, 'results.json'), 'w') as f:
        json.dump(results, f, indent=2)
    out_dir = osp.join(args.work_dir, 'comparison')
    # reuses the predictions that `mim test` dumped in each work dir
    run_logged([sys.executable, osp.join(REPO, 'tools/analysis/compare_models.py'),
                '--work-dirs', osp.join(args.work_dir, 'baseline'),
                osp.join(args.work_dir, 'gan'), '--names', 'Mask R-CNN', 'GAN Mask R-CNN',
                '--out-dir', out_dir], osp.join(args.work_dir, 'compare.log'))
    print(f'[demo] comparison figures in {out_dir}')
    print(f'[demo] done in {(time.time() - start) / 60:.1f} min; results in {args.work_dir}')


def print_table(results):
    names = list(results)
    header = f'{"metric":<18}' + ''.join(f'{n:>10}' for n in names) + f'{"GAN-base":>10}'
    print('\n' + header + '\n' + '-' * len(header))
    for _, key in KEYS:
        if not all(results[n] and key in results[n] for n in names):
            continue
        vals = [100 * results[n][key] for n in names]
        print(f'{key:<18}' + ''.join(f'{v:>10.1f}' for v in vals) + f'{vals[-1] - vals[0]:>+10.1f}')
    print()


if __name__ == '__main__':
    main()
