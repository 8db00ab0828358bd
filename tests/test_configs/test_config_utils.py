"""Shortening a schedule keeps its shape; rescaling images touches every pipeline."""
import os.path as osp

import pytest
from mmengine.config import Config

from conftest import CONFIGS
from gan_mask_rcnn_lab.config_utils import rescale_schedule, set_image_scale


def test_rescale_keeps_fractions_and_gan_keys():
    cfg = Config.fromfile(osp.join(CONFIGS, 'gan-mask-rcnn_r18_fpn_shapes-cpu.py'))
    assert cfg.train_cfg.max_iters == 2000 and cfg.model.adv_start_fraction == 0.25
    rescale_schedule(cfg, 400, checkpoint_interval=100)
    gen = cfg.param_scheduler  # one list, built for both optimizers
    assert gen[0]['end'] == 100                  # warm-up kept: 100 <= 400 // 4
    assert gen[1]['milestones'] == [300]         # 1500 of 2000 -> 300 of 400
    assert gen[1]['end'] == 400
    assert cfg.model.adv_start_fraction == 0.25  # a fraction: nothing to rescale
    assert cfg.default_hooks.checkpoint.interval == 100
    with pytest.raises(ValueError, match='max_iters'):
        rescale_schedule(cfg, 0)


def test_set_image_scale_all_pipelines():
    cfg = Config.fromfile(osp.join(CONFIGS, 'mask-rcnn_r18_fpn_glas-cpu.py'))
    set_image_scale(cfg, (288, 192))
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        scales = [t['scale'] for t in cfg[key].dataset.pipeline if t['type'] == 'Resize']
        assert scales == [(288, 192)]
