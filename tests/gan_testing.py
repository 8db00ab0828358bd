"""Helpers of the GAN training tests: the tiny GAN config, its plain Mask R-CNN
twin, a seeded model build, the MessageHub iteration the detector reads, and an
interrupted run."""
import copy
import os.path as osp

import torch
from conftest import CONFIGS, tiny_cfg
from mmengine.hooks import Hook
from mmengine.logging import MessageHub
from mmengine.runner import Runner

from mmdet.registry import MODELS

GAN_CFG = osp.join(CONFIGS, 'gan-mask-rcnn_r18_fpn_shapes-cpu.py')
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


def plain_model_cfg(gan_model_cfg):
    """The ``MaskRCNN`` config of a ``GANMaskRCNN`` config (same detector)."""
    cfg = copy.deepcopy(gan_model_cfg)
    cfg.type = 'MaskRCNN'
    cfg.roi_head.type = 'StandardRoIHead'
    for key in ('box_discriminator', 'mask_discriminator', 'disc_roi_extractor',
                'max_disc_rois_per_img'):
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
