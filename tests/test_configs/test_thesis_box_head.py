"""The thesis' box generator (section 3.2.1: "1 convolution layers followed by 2
fully-connected layers") as a one-line override of any config: mmdet's
``ConvFCBBoxHead(num_shared_convs=1, num_shared_fcs=2)`` in place of the configs'
``Shared2FCBBoxHead`` (2 FC, the author's code).

Reference: the layer counts of the thesis' text; the head's output shapes from
mmdet's head contract ((K, num_classes + 1) scores, (K, 4 * num_classes) deltas)."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from conftest import CONFIGS
from mmdet.registry import MODELS

THESIS_HEAD = dict(model=dict(roi_head=dict(bbox_head=dict(
    type='ConvFCBBoxHead', num_shared_convs=1, num_shared_fcs=2))))


@pytest.mark.parametrize('config', ['gan-mask-rcnn_r18_fpn_shapes-cpu.py',
                                    'gan-mask-rcnn_r50_fpn_2k_glas.py'])
def test_thesis_box_head_is_one_conv_two_fc(config):
    cfg = Config.fromfile(osp.join(CONFIGS, config))
    assert cfg.model.roi_head.bbox_head.type == 'Shared2FCBBoxHead'  # the default
    cfg.merge_from_dict(THESIS_HEAD)
    init_default_scope('mmdet')
    head = MODELS.build(cfg.model.roi_head.bbox_head)
    assert len(head.shared_convs) == 1 and len(head.shared_fcs) == 2
    assert not head.cls_convs and not head.cls_fcs and not head.reg_convs and not head.reg_fcs
    num_classes, size = head.num_classes, head.roi_feat_size
    feats = torch.randn(3, head.in_channels, *size, requires_grad=True)
    scores, deltas = head(feats)
    assert scores.shape == (3, num_classes + 1) and deltas.shape == (3, 4 * num_classes)
    deltas.sum().backward()
    assert head.shared_convs[0].conv.weight.grad.abs().sum() > 0
