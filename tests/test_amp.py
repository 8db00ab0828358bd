"""mmdet's ``--amp`` on a GAN config: AmpOptimWrapper on both sides, or a clear stop.

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

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
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


@pytest.mark.cuda
@needs_cuda
def test_amp_on_both_sides():
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
