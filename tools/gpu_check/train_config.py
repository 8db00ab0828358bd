"""Write the configs of the GPU check's training runs.

Each is the baseline or GAN shapes config of this project with an R50-FPN from
random weights (no pretrained checkpoint), reading a synthetic shapes set, for a few
iterations without validation, with ``GpuCheckProbeHook`` recording the run. The
GAN trains adversarially from its first iteration at full adversarial weights. A
run's work dir defaults to the config's name beside it (``tools/train.py
--work-dir`` sets another). Example::

    python tools/gpu_check/train_config.py --data-root /tmp/shapes --out-dir /tmp/cfgs \
        --runs baseline:30 gan:30 gan:4:4   # gan:4:4: 4 iterations, checkpoint at 4
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config
from plan import config_name

from gan_mask_rcnn_lab.config_utils import set_data_root

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = {m: osp.join(REPO, 'configs', 'gan_mask_rcnn', f'{prefix}_r18_fpn_shapes-cpu.py')
           for m, prefix in (('baseline', 'mask-rcnn'), ('gan', 'gan-mask-rcnn'))}
R50_NECK_CHANNELS = [256, 512, 1024, 2048]


def check_config(model: str, data_root: str, work_dir: str, iters: int,
                 checkpoint_at: int = 0, seed: int = 0) -> Config:
    """The config of one run (see the module docstring).

    Args:
        model (str): ``'baseline'`` or ``'gan'``.
        data_root (str): Folder of ``tools/generate_shapes.py`` output.
        work_dir (str): The run's work dir (``probe.json`` lands there).
        iters (int): Training iterations (``train_cfg.max_iters``).
        checkpoint_at (int): Save a checkpoint every that many iterations; 0 saves
            none (a timed run does not write 300 MB).
        seed (int): ``randomness.seed``.
    """
    if model not in CONFIGS:
        raise ValueError(f'model must be one of {sorted(CONFIGS)}, got {model!r}')
    if iters < 1 or checkpoint_at < 0:
        raise ValueError(f'iters must be >= 1 and checkpoint_at >= 0, got {iters}, '
                         f'{checkpoint_at}')
    cfg = Config.fromfile(CONFIGS[model])
    cfg.model.backbone.depth = 50
    cfg.model.neck.in_channels = R50_NECK_CHANNELS
    set_data_root(cfg, data_root)
    cfg.train_cfg.max_iters = iters
    if model == 'gan':
        cfg.model.adv_start_fraction = 0.0
        cfg.model.adv_ramp_fraction = 0.0
    cfg.train_cfg.val_interval = iters + 1
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', by_epoch=False, interval=checkpoint_at or iters + 1,
        save_last=checkpoint_at > 0)
    cfg.default_hooks.logger.interval = 10
    cfg.custom_imports.imports = list(cfg.custom_imports.imports) + ['gpu_check_probe']
    cfg.custom_hooks = [dict(type='GpuCheckProbeHook')]
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    cfg.randomness = dict(seed=seed)
    cfg.work_dir = work_dir
    return cfg


def parse_run(spec: str):
    """``'gan:4:4'`` -> ``('gan', 4, 4)``; ``'baseline:30'`` -> ``('baseline', 30, 0)``."""
    parts = spec.split(':')
    if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts[1:]):
        raise ValueError(f'a run is MODEL:ITERS[:CHECKPOINT_AT], e.g. gan:30 or gan:4:4, '
                         f'got {spec!r}')
    return parts[0], int(parts[1]), int(parts[2]) if len(parts) == 3 else 0


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root', required=True, help='generated shapes set')
    parser.add_argument('--out-dir', required=True, help='where the configs are written')
    parser.add_argument('--runs', nargs='+', required=True, metavar='MODEL:ITERS[:CKPT]',
                        help='one config per run, named as config_name() says')
    return parser.parse_args()


def main():
    args = parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    runs = sorted(set(map(parse_run, args.runs)))
    for model, iters, checkpoint_at in runs:
        name = config_name(model, iters, checkpoint_at)
        cfg = check_config(model, args.data_root, osp.join(args.out_dir, name[:-3]), iters,
                           checkpoint_at)
        cfg.dump(osp.join(args.out_dir, name))
        print(f'wrote {osp.join(args.out_dir, name)}')
    print(f'{len(runs)} configs in {args.out_dir}')


if __name__ == '__main__':
    main()
