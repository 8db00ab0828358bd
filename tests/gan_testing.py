"""Helpers of the GAN training tests: the tiny GAN config, its plain detector twin,
the Cascade and HTC config pairs shrunk the same way, a seeded model build, the
MessageHub iteration the detector reads, and an interrupted run."""
import copy
import os.path as osp

import torch
from conftest import CONFIGS, TINY_SIZE, tiny_cfg
from mmengine.hooks import Hook
from mmengine.logging import MessageHub
from mmengine.runner import Runner

from mmdet.registry import MODELS

GAN_CFG = osp.join(CONFIGS, 'gan-mask-rcnn_r18_fpn_shapes-cpu.py')
# kind: (baseline, GAN) R18 CPU configs on the shapes set of the multi-stage detectors
STAGE_PAIRS = {
    kind: tuple(osp.join(osp.dirname(CONFIGS), folder, f'{prefix}{name}_r18_fpn_shapes-cpu.py')
                for prefix in ('', 'gan-'))
    for kind, folder, name in (('cascade', 'gan_cascade_rcnn', 'cascade-mask-rcnn'),
                               ('htc', 'gan_htc', 'htc-without-semantic'))}
N = 2  # iterations of the runner tests (adversarial, weights ramping 0.5 -> 1)


def gan_tiny_cfg(data_root, work_dir, max_iters=N):
    """The shapes GAN config shrunk by ``tiny_cfg``: adversarial from iteration 0,
    weights ramping over two iterations, reseeded, no validation."""
    cfg = tiny_cfg(GAN_CFG, data_root, work_dir, max_iters)
    cfg.model.update(adv_start_fraction=0, adv_ramp_fraction=min(1.0, 2 / max_iters))
    cfg.train_cfg.update(type='ReseedIterBasedTrainLoop', reseed_every_iter=True)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None  # no validation: speed
    cfg.optim_wrapper.discriminator.clip_grad = dict(max_norm=10)  # logs grad_norm_d
    cfg.visualizer.name = work_dir  # the visualizer is a per-name singleton
    return cfg


PLAIN_TYPES = {'GANMaskRCNN': 'MaskRCNN', 'GANRoIHead': 'StandardRoIHead',
               'GANCascadeRCNN': 'CascadeRCNN', 'GANCascadeRoIHead': 'CascadeRoIHead',
               'GANHybridTaskCascade': 'HybridTaskCascade',
               'GANHybridTaskCascadeRoIHead': 'HybridTaskCascadeRoIHead'}


def plain_model_cfg(gan_model_cfg):
    """The plain detector's config of a GAN detector's config (e.g. ``MaskRCNN``
    for ``GANMaskRCNN``; the same detector)."""
    cfg = copy.deepcopy(gan_model_cfg)
    cfg.type = PLAIN_TYPES[cfg.type]
    cfg.roi_head.type = PLAIN_TYPES[cfg.roi_head.type]
    for key in ('box_discriminator', 'mask_discriminator', 'disc_roi_extractor',
                'max_disc_rois_per_img', 'box_stages', 'mask_stages'):
        cfg.roi_head.pop(key, None)
    for key in ('adv_start_fraction', 'adv_ramp_fraction', 'd_steps',
                'max_consecutive_skips'):
        cfg.pop(key, None)
    return cfg


def build(cfg, plain=False, **model_args):
    """The model of ``cfg`` (or its plain twin), initialised from seed 0."""
    torch.manual_seed(0)
    model_cfg = plain_model_cfg(cfg.model) if plain else dict(cfg.model, **model_args)
    model = MODELS.build(model_cfg)
    model.init_weights()
    return model


def params(module):
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def set_iter(iteration, max_iters=N):
    """Tell the detector the iteration, as a Runner's RuntimeInfoHook does."""
    hub = MessageHub.get_current_instance()
    hub.update_info('iter', iteration)
    hub.update_info('max_iters', max_iters)


class _StopAfter(Hook):
    """Stop training after ``iters`` iterations, as an interruption would."""

    def __init__(self, iters):
        self.iters = iters

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 >= self.iters:  # runner.iter: this iteration, 0-based
            runner.train_loop.stop_training = True


def train_with_interruption(make_cfg, max_iters):
    """Train ``max_iters // 2`` iterations of the ``max_iters`` schedule (its
    ``max_iters`` unchanged, which the GAN schedule's fractions depend on), save,
    stop, then resume to the end.

    Args:
        make_cfg (callable): Returns a fresh ``Config`` of the full schedule in the
            same work dir on every call.
        max_iters (int): Iterations of the full schedule (even).
    """
    first = make_cfg()
    first.default_hooks.checkpoint.interval = max_iters // 2
    runner = Runner.from_cfg(first)
    runner.register_hook(_StopAfter(max_iters // 2), priority='LOWEST')
    runner.train()
    assert runner.iter == max_iters // 2
    second = make_cfg()
    second.resume = True
    Runner.from_cfg(second).train()


def tiny_stage_cfg(config, data_root, work_dir, max_iters=N):
    """``tiny_cfg`` for any CPU config, a cascade's list of stage ``rcnn`` configs
    included: 128 px images, 64 proposals, 32 RoIs per stage, seed 0, no validation."""
    from mmengine.config import Config

    from gan_mask_rcnn_lab.config_utils import (rescale_schedule, set_data_root,
                                                set_image_scale)
    cfg = Config.fromfile(config)
    set_data_root(cfg, data_root)
    set_image_scale(cfg, TINY_SIZE)
    cfg.train_dataloader.update(num_workers=0, persistent_workers=False)
    model = cfg.model
    model.train_cfg.rpn_proposal.max_per_img = 64
    stages = model.train_cfg.rcnn
    for stage in (stages if isinstance(stages, list) else [stages]):
        stage.sampler.num = 32
    model.test_cfg.rpn.max_per_img = 64
    rescale_schedule(cfg, max_iters)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.default_hooks.logger.interval = 1
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    cfg.visualizer.name = work_dir  # the visualizer is a per-name singleton
    cfg.randomness = dict(seed=0)
    cfg.work_dir = work_dir
    cfg.launcher = 'none'
    return cfg
