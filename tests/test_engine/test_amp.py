"""Mixed precision on a GAN config: the GAN losses under ``torch.autocast`` (CPU,
bfloat16), mmdet's ``--amp`` giving AmpOptimWrapper on both sides on a GPU, and a
clear stop on a CPU.

mmdet's ``tools/train.py --amp`` asserts ``optim_wrapper.type == 'OptimWrapper'``,
then sets ``type='AmpOptimWrapper'`` and ``loss_scale='dynamic'`` on the top-level
``optim_wrapper``; ``_as_mmdet_amp`` repeats those two assignments.
"""
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import AmpOptimWrapper, build_optim_wrapper
from mmengine.registry import init_default_scope

from mmdet.registry import MODELS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
GAN_CPU = osp.join(REPO, 'configs', 'gan_mask_rcnn', 'gan-mask-rcnn_r18_fpn_shapes-cpu.py')
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
cpu_only = pytest.mark.skipif(torch.cuda.is_available(), reason='CPU behaviour')


def _as_mmdet_amp(cfg: Config) -> Config:
    assert cfg.optim_wrapper.type == 'OptimWrapper'
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.loss_scale = 'dynamic'
    return cfg


def _model(cfg: Config):
    init_default_scope('mmdet')
    return MODELS.build(cfg.model)


def test_gan_losses_under_cpu_autocast(shapes_root, tmp_path):
    """Under bfloat16 autocast the GAN RoI head runs on bfloat16 FPN features (it
    stopped with a dtype error before the ops' Autocast kernels), every loss is
    finite and the box generator term reaches bbox_pred through float32 RoIs.
    mmcv's CPU nms and RoIAlign have no bfloat16 kernels, so the RPN runs in
    float32 and the generator heads pool with PrRoIExtractor (mapped levels)."""
    import copy

    from gan_testing import build, gan_tiny_cfg, set_iter
    from mmengine.runner import Runner
    init_default_scope('mmdet')
    cfg = gan_tiny_cfg(shapes_root, str(tmp_path))
    for key, size in (('bbox_roi_extractor', 7), ('mask_roi_extractor', 14)):
        cfg.model.roi_head[key] = dict(
            type='PrRoIExtractor', roi_layer=dict(type='PrRoIPool', output_size=size),
            out_channels=cfg.model.roi_head[key].out_channels,
            featmap_strides=cfg.model.roi_head[key].featmap_strides)
    batch = next(iter(Runner.build_dataloader(cfg.train_dataloader, seed=0)))
    model = build(cfg)
    set_iter(1)
    data = model.data_preprocessor(batch, True)
    samples = data['data_samples']
    with torch.autocast('cpu', dtype=torch.bfloat16):
        feats = model.extract_feat(data['inputs'])
    assert feats[0].dtype == torch.bfloat16
    rpn_samples = copy.deepcopy(samples)
    for sample in rpn_samples:
        sample.gt_instances.labels = torch.zeros_like(sample.gt_instances.labels)
    _, proposals = model.rpn_head.loss_and_predict(
        [f.float() for f in feats], rpn_samples, proposal_cfg=model.train_cfg.rpn_proposal)
    with torch.autocast('cpu', dtype=torch.bfloat16), \
            model.roi_head.generator_pass(model.current_gan_schedule()[1]):
        losses = model.roi_head.loss(feats, proposals, samples)
    assert {'loss_g_box', 'loss_g_mask'} <= set(losses)
    for name, value in losses.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        assert all(torch.isfinite(v).all() for v in values), name
    bbox_pred = model.roi_head.bbox_head.fc_reg.weight
    grad, = torch.autograd.grad(losses['loss_g_box'], bbox_pred)
    assert grad.abs().sum() > 0


@pytest.mark.cuda
@needs_cuda
def test_amp_wrapper_on_both_sides():
    cfg = _as_mmdet_amp(Config.fromfile(GAN_CPU))
    wrappers = build_optim_wrapper(_model(cfg).cuda(), cfg.optim_wrapper)
    for side in ('generator', 'discriminator'):
        assert isinstance(wrappers[side], AmpOptimWrapper), side
        assert wrappers[side].loss_scaler.is_enabled(), side


@cpu_only
def test_amp_wrapper_refuses_cpu():
    cfg = _as_mmdet_amp(Config.fromfile(GAN_CPU))
    with pytest.raises(AssertionError, match='only available training on gpu'):
        build_optim_wrapper(_model(cfg), cfg.optim_wrapper)


@cpu_only
def test_train_amp_on_cpu_says_what_to_set():
    proc = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'train.py'), GAN_CPU, '--amp'],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert '--amp needs a CUDA GPU' in proc.stderr
    assert "optim_wrapper.type='OptimWrapper'" in proc.stderr
