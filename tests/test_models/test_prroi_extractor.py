"""Tests of PrRoIExtractor: level routing, the max-over-levels mode, gradients,
and a Mask R-CNN forward/backward with it in both RoI extractors."""
import os.path as osp

import pytest
import torch
from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor
from mmdet.registry import MODELS
from mmdet.testing import demo_mm_inputs
from mmdet.utils import register_all_modules
from mmengine.config import Config

from gan_mask_rcnn.ops import PrRoIPool
from gan_mask_rcnn.prroi_extractor import PrRoIExtractor

STRIDES = [4, 8, 16, 32]
BASELINE = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs',
                    'gan_mask_rcnn', 'mask-rcnn_r18_fpn_shapes-cpu.py')


def _pyramid(channels=3, size=512, fill=None):
    gen = torch.Generator().manual_seed(0)
    levels = []
    for i, s in enumerate(STRIDES):
        shape = (2, channels, size // s, size // s)
        levels.append(
            torch.full(shape, float(fill[i])) if fill else torch.
            randn(shape, generator=gen))
    return tuple(levels)


# Boxes of levels 0, 1, 2 and 3 by mmdet's scale rule on a 512 px image; the
# first two lie within 480 px, the last grid point of the coarsest level.
ROIS = torch.tensor([[0, 10.0, 12.0, 40.0, 50.0], [1, 5.0, 5.0, 200.0, 150.0],
                     [0, 30.5, 20.25, 330.0, 326.0],
                     [1, 0.0, 0.0, 500.0, 480.0]])


def test_default_output_size_is_28():
    extractor = MODELS.build(
        dict(type='PrRoIExtractor', out_channels=3, featmap_strides=STRIDES))
    assert isinstance(extractor, PrRoIExtractor)
    assert all(isinstance(layer, PrRoIPool) for layer in extractor.roi_layers)
    assert [layer.spatial_scale for layer in extractor.roi_layers] == \
        [1 / s for s in STRIDES]
    assert extractor(_pyramid(), ROIS).shape == (4, 3, 28, 28)


def test_string_type_means_this_projects_op():
    extractor = PrRoIExtractor(3,
                               STRIDES,
                               roi_layer=dict(type='PrRoIPool',
                                              output_size=(5, 6)))
    assert type(extractor.roi_layers[0]) is PrRoIPool
    assert extractor.roi_layers[0].output_size == (5, 6)


def test_mapped_mode_routes_like_single_roi_extractor():
    feats = _pyramid()
    ours = PrRoIExtractor(3, STRIDES, roi_layer=dict(output_size=7))
    mmdet = SingleRoIExtractor(roi_layer=dict(type=PrRoIPool, output_size=7),
                               out_channels=3,
                               featmap_strides=STRIDES)
    levels = mmdet.map_roi_levels(ROIS, len(STRIDES))
    assert levels.tolist() == [0, 1, 2, 3]
    torch.testing.assert_close(ours(feats, ROIS), mmdet(feats, ROIS))
    torch.testing.assert_close(ours(feats, ROIS, roi_scale_factor=1.5),
                               mmdet(feats, ROIS, roi_scale_factor=1.5))


def test_max_mode_on_constant_levels():
    # Level l is the constant l + 1; its surface equals that constant between
    # the map's first and last grid points (and decays to 0 within one pixel
    # outside), so the maximum is 4 for RoIs inside every level's grid.
    extractor = PrRoIExtractor(2,
                               STRIDES,
                               roi_layer=dict(output_size=4),
                               level_mode='max')
    out = extractor(_pyramid(channels=2, fill=[1, 2, 3, 4]), ROIS[:2])
    torch.testing.assert_close(out, torch.full_like(out, 4.0))


def test_max_mode_is_elementwise_max_of_levels():
    feats = _pyramid()
    extractor = PrRoIExtractor(3,
                               STRIDES,
                               roi_layer=dict(output_size=5),
                               level_mode='max')
    per_level = torch.stack(
        [PrRoIPool(5, 1 / s)(f, ROIS) for s, f in zip(STRIDES, feats)])
    torch.testing.assert_close(extractor(feats, ROIS),
                               per_level.max(dim=0).values)


@pytest.mark.parametrize('level_mode', ['mapped', 'max'])
def test_gradients_reach_rois_and_features(level_mode):
    feats = tuple(f.double().requires_grad_() for f in _pyramid())
    rois = ROIS.double().requires_grad_()
    extractor = PrRoIExtractor(3,
                               STRIDES,
                               roi_layer=dict(output_size=6),
                               level_mode=level_mode)
    extractor(feats, rois).square().sum().backward()
    assert rois.grad[:, 1:].abs().min() > 0 and rois.grad[:, 0].eq(0).all()
    assert sum(f.grad.abs().sum() for f in feats) > 0


@pytest.mark.parametrize('level_mode', ['mapped', 'max'])
def test_rois_stay_float32_under_autocast(level_mode):
    """mmdet's extractors cast RoIs to the features' dtype; under bfloat16 autocast
    that moves corners between 1024 and 2048 px by up to 4 px. Here the output
    must equal float64 pooling of the same bfloat16 features at the exact RoIs
    (to bfloat16 output rounding), far closer than pooling at the rounded RoIs."""
    extractor = PrRoIExtractor(out_channels=3, featmap_strides=STRIDES,
                               roi_layer=dict(output_size=7), level_mode=level_mode,
                               finest_scale=512)
    feats = tuple(f.bfloat16() for f in _pyramid(size=2048))
    rois = torch.tensor([[0, 1027.0, 1101.0, 1389.0, 1355.0],
                         [1, 1283.0, 1620.0, 1501.0, 1990.0]])
    assert (rois.bfloat16().float() != rois).any()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = extractor(feats, rois)
    assert out.dtype == torch.bfloat16
    feats64 = tuple(f.double() for f in feats)
    exact = extractor(feats64, rois.double())
    rounded = extractor(feats64, rois.bfloat16().double())
    err = (out.double() - exact).abs().max().item()
    assert err <= 2 ** -8 * exact.abs().max().item()
    assert (rounded - exact).abs().max().item() > 5 * err


def test_bad_level_mode_raises():
    with pytest.raises(ValueError, match="level_mode must be one of .*'sum'"):
        PrRoIExtractor(3, STRIDES, level_mode='sum')


def test_mask_rcnn_forward_backward_with_prroi_extractors():
    register_all_modules()
    cfg = Config.fromfile(BASELINE).model
    cfg.roi_head.bbox_roi_extractor = dict(type='PrRoIExtractor',
                                           roi_layer=dict(output_size=7),
                                           out_channels=256,
                                           featmap_strides=STRIDES)
    cfg.roi_head.mask_roi_extractor = dict(type='PrRoIExtractor',
                                           roi_layer=dict(output_size=14),
                                           level_mode='max',
                                           out_channels=256,
                                           featmap_strides=STRIDES)
    cfg.train_cfg.rpn_proposal.max_per_img = 32
    cfg.train_cfg.rcnn.sampler.num = 16
    model = MODELS.build(cfg)
    calls = []
    for extractor in (model.roi_head.bbox_roi_extractor,
                      model.roi_head.mask_roi_extractor):
        assert isinstance(extractor, PrRoIExtractor)
        extractor.register_forward_hook(
            lambda m, args, out: calls.append(tuple(out.shape[1:])))
    data = model.data_preprocessor(
        demo_mm_inputs(batch_size=1,
                       image_shapes=(3, 96, 96),
                       num_items=[2],
                       num_classes=4,
                       with_mask=True), True)
    loss, _ = model.parse_losses(model(**data, mode='loss'))
    assert torch.isfinite(loss)
    loss.backward()
    assert (256, 7, 7) in calls and (256, 14, 14) in calls
    grad = model.backbone.conv1.weight.grad
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert model.roi_head.mask_head.convs[0].conv.weight.grad.abs().sum() > 0
