"""Compare two or more detectors side by side (baseline first), as in the thesis.

Prints the tables (AP, AP50, AP75, APs, APm, APl of bbox, segm and Boundary AP),
per-class AP and the difference of each model to the first, and writes to
``--out-dir``: ``tables.md``, ``metrics.json``, ``comparison_grid.png`` (rows:
ground truth, then each model; same test images) and ``loss_curves.png`` (G and
D losses from the training logs). All models are evaluated on the first
model's test set.

Examples::

    python tools/analysis_tools/compare_models.py \
        --configs baseline.py gan.py --checkpoints base/iter_2000.pth gan/iter_2000.pth \
        --names "Mask R-CNN" "GAN Mask R-CNN" --out-dir outputs/compare
    # training work dirs (config, last_checkpoint, logs; a *.pkl from
    # `mim test ... --out` is reused instead of running the model)
    python tools/analysis_tools/compare_models.py --work-dirs work_dirs/base work_dirs/gan
"""
import argparse
import os.path as osp

from mmengine.config import Config

from gan_mask_rcnn_lab.comparison_plots import comparison_grid, loss_curves, read_training_log
from gan_mask_rcnn_lab.model_comparison import (ModelRun, compare, reference_data,
                                                run_from_work_dir, write_report)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--configs', nargs='+', default=[], help='one config per model')
    parser.add_argument('--checkpoints', nargs='+', default=[], help='one per config')
    parser.add_argument('--work-dirs', nargs='+', default=[], help='training work dirs')
    parser.add_argument('--names', nargs='+', help='column titles (default: file names)')
    parser.add_argument('--out-dir', default='outputs/compare')
    parser.add_argument('--num-images', type=int, default=4, help='columns of the grid')
    parser.add_argument('--img-ids', type=int, nargs='+', help='image ids for the grid')
    parser.add_argument('--score-thr', type=float, default=0.5, help='drawn detections')
    args = parser.parse_args()
    if len(args.configs) != len(args.checkpoints):
        parser.error(f'--configs ({len(args.configs)}) and --checkpoints '
                     f'({len(args.checkpoints)}) must pair up')
    n_models = len(args.configs) + len(args.work_dirs)
    if n_models < 2:
        parser.error(f'give at least 2 models, got {n_models}')
    if args.names and len(args.names) != n_models:
        parser.error(f'--names has {len(args.names)} names for {n_models} models')
    return args


def main():
    args = parse_args()
    sources = [(osp.splitext(osp.basename(c))[0], c, k)
               for c, k in zip(args.configs, args.checkpoints)]
    sources += [(osp.basename(osp.normpath(d)), d, None) for d in args.work_dirs]
    names = args.names or [s[0] for s in sources]
    runs = [ModelRun(name, config, checkpoint, log_dir=osp.dirname(checkpoint))
            if checkpoint else run_from_work_dir(name, config)
            for name, (_, config, checkpoint) in zip(names, sources)]

    results = compare(runs, args.out_dir)
    data = reference_data(Config.fromfile(runs[0].config))
    print(write_report(results, data['classes'], args.out_dir))
    grid = osp.join(args.out_dir, 'comparison_grid.png')
    shown = comparison_grid({n: r['predictions'] for n, r in results.items()}, data, grid,
                            args.num_images, args.img_ids, args.score_thr)
    curves = osp.join(args.out_dir, 'loss_curves.png')
    loss_curves({r.name: read_training_log(r.log_dir) for r in runs}, curves)
    print(f'grid of images {shown}: {grid}\nloss curves: {curves}\n'
          f"tables: {osp.join(args.out_dir, 'tables.md')}")


if __name__ == '__main__':
    main()
