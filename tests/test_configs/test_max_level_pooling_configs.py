"""The max-over-levels pooling pairs: the author's generator-head pooling.

Each config must build, pool its box and mask RoIs as the maximum over all FPN
levels, and differ from the config it extends in the two RoI extractors only, so
that the pooling's effect can be told from the GAN's.
"""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from conftest import CONFIGS

PAIRS = {  # max-levels config -> the config it extends
    f'{prefix}_{new}.py': f'{prefix}_{old}.py'
    for prefix in ('mask-rcnn', 'gan-mask-rcnn')
    for new, old in (('r18_fpn_max-levels_glas-cpu', 'r18_fpn_glas-cpu'),
                     ('r50_fpn_max-levels_2k_glas', 'r50_fpn_2k_glas'))}
EXTRACTORS = {'bbox_roi_extractor': 7, 'mask_roi_extractor': 14}


def _without_extractors(cfg):
    cfg = cfg.to_dict()
    cfg.pop('max_level_roi_head', None)
    for key in EXTRACTORS:
        cfg['model']['roi_head'].pop(key)
    return cfg


@pytest.mark.parametrize('config', sorted(PAIRS))
def test_only_the_generator_heads_pooling_differs(config):
    new = Config.fromfile(osp.join(CONFIGS, config))
    old = Config.fromfile(osp.join(CONFIGS, PAIRS[config]))
    assert _without_extractors(new) == _without_extractors(old)
    for key, size in EXTRACTORS.items():
        assert new.model.roi_head[key] == dict(
            type='PrRoIExtractor', level_mode='max',
            roi_layer=dict(type='PrRoIPool', output_size=size),
            out_channels=256, featmap_strides=[4, 8, 16, 32])


@pytest.mark.parametrize('config', sorted(PAIRS))
def test_heads_pool_the_maximum_over_all_levels(config):
    """Built from the config, each extractor returns, for feature maps that are
    constant per level (level l = 1..4 holds 10 * l in channel 0 and -l in channel 1), the
    largest level's value: 40 and -1 in every bin, whatever the RoI's size
    (mmdet's mapping would pick one level by size)."""
    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    cfg = Config.fromfile(osp.join(CONFIGS, config))
    cfg.model.backbone.init_cfg = None  # no ImageNet download
    model = MODELS.build(cfg.model)
    strides = (4, 8, 16, 32)
    feats = tuple(torch.zeros(1, 256, 128 // s, 128 // s) for s in strides)
    for lvl, feat in enumerate(feats, 1):
        feat[0, 0], feat[0, 1] = 10.0 * lvl, -lvl
    # inside every level's pixel centres of a 128 px image: no zero padding enters
    rois = torch.tensor([[0, 16.0, 16.0, 28.0, 28.0], [0, 16.0, 20.0, 90.0, 88.0]])
    for key, size in EXTRACTORS.items():
        out = getattr(model.roi_head, key)(feats, rois)
        assert out.shape == (2, 256, size, size)
        # float32 bin integrals round in the 6th digit; the levels are 10 apart
        torch.testing.assert_close(out[:, 0], torch.full((2, size, size), 40.0),
                                   rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(out[:, 1], torch.full((2, size, size), -1.0),
                                   rtol=1e-5, atol=1e-4)
