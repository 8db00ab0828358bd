"""Small helpers that adapt a loaded config: schedule length and data location.

Used by the demo, the experiment runner and the tests, so that a shorter run keeps
the shape of the configured schedule (warm-up, lr steps at the same fractions).
"""
import os.path as osp

from mmengine.config import Config


def _schedulers(cfg: Config):
    scheds = cfg.param_scheduler
    if isinstance(scheds, dict) and 'type' not in scheds:  # dict(generator=[...], ...)
        return [s for side in scheds.values() for s in side]
    return scheds if isinstance(scheds, list) else [scheds]


def rescale_schedule(cfg: Config, max_iters: int, checkpoint_interval: int = None) -> Config:
    """Set ``max_iters`` and move lr milestones and the end of schedulers with it.

    Milestones keep their fraction of the original ``train_cfg.max_iters``;
    warm-ups (schedulers ending before the first milestone) keep their length
    unless it exceeds a quarter of the new schedule. The GAN schedule needs no
    change: ``GANMaskRCNN`` sets it in fractions of ``max_iters``.

    Args:
        cfg (Config): An iteration-based config (modified in place).
        max_iters (int): New number of training iterations.
        checkpoint_interval (int, optional): Defaults to ``max_iters``.
    """
    if max_iters < 1:
        raise ValueError(f'max_iters must be >= 1, got {max_iters}')
    old = cfg.train_cfg.max_iters
    ratio = max_iters / old
    for sched in _schedulers(cfg):
        if sched.get('by_epoch', True):
            raise ValueError(f'rescale_schedule needs by_epoch=False schedulers, got {sched}')
        if 'milestones' in sched:
            sched['milestones'] = [max(1, round(m * ratio)) for m in sched['milestones']]
            sched['end'] = max_iters
        elif sched.get('end', old) >= old:
            sched['end'] = max_iters
        else:
            sched['end'] = max(1, min(sched['end'], max_iters // 4))
    cfg.train_cfg.max_iters = max_iters
    cfg.train_cfg.val_interval = max_iters
    cfg.default_hooks.checkpoint.interval = checkpoint_interval or max_iters
    return cfg


def set_data_root(cfg: Config, data_root: str, train_ann: str = 'annotations/train.json',
                  test_ann: str = 'annotations/val.json', img_prefix: str = '') -> Config:
    """Point the train, val and test dataloaders and evaluators at ``data_root``.

    ``train_ann``/``test_ann`` are relative to ``data_root`` or absolute (e.g.
    split files written elsewhere), as for mmengine's datasets.
    """
    data_root = osp.join(data_root, '')
    for key, ann in (('train_dataloader', train_ann), ('val_dataloader', test_ann),
                     ('test_dataloader', test_ann)):
        ds = cfg[key].dataset
        ds.data_root = data_root
        ds.ann_file = ann
        ds.data_prefix = dict(img=img_prefix)
    for key in ('val_evaluator', 'test_evaluator'):
        cfg[key].ann_file = osp.join(data_root, test_ann)
    return cfg


def set_image_scale(cfg: Config, scale) -> Config:
    """Set the ``Resize`` scale (w, h) or side of the train, val and test pipelines.

    A CPU-sized run trades resolution for iterations; this keeps the three
    pipelines consistent (``keep_ratio`` stays as configured).
    """
    if isinstance(scale, int):
        scale = (scale, scale)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        resizes = [t for t in cfg[key].dataset.pipeline if t['type'] == 'Resize']
        if not resizes:
            raise ValueError(f'{key} has no Resize transform to rescale')
        for t in resizes:
            t['scale'] = tuple(scale)
    return cfg


def set_classes(cfg: Config, classes) -> None:
    """Train and evaluate ``classes`` with ``CheckedCocoDataset``: dataset type and
    metainfo of every dataloader, and the class count of the box and mask heads."""
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.type = 'CheckedCocoDataset'
        cfg[key].dataset.metainfo = dict(classes=tuple(classes))
    for head in ('bbox_head', 'mask_head'):
        cfg.model.roi_head[head].num_classes = len(classes)
