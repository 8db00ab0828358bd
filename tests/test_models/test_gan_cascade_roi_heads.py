"""GANCascadeRoIHead and GANHybridTaskCascadeRoIHead (with and without the semantic
branch): the box term reaches each adversarial stage's ``bbox_pred`` through the box
coordinates and the mask term each stage's mask head (finite differences, float64);
the stage options and their errors; the log names per stage; prediction exactly the
mmdet head's with the same weights.

References: finite differences, mmdet's CascadeRoIHead / HybridTaskCascadeRoIHead."""
import copy
import re

import numpy as np
import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.structures import PixelData
from test_gan_roi_head import C, IMG, NUM_CLASSES, head_cfg, make_batch

from mmdet.registry import MODELS

STAGES = ((1, 0.5, [0.1, 0.1, 0.2, 0.2]), (0.5, 0.6, [0.05, 0.05, 0.1, 0.1]),
          (0.25, 0.7, [0.033, 0.033, 0.067, 0.067]))
KINDS = ('cascade', 'htc', 'htc_semantic')
PLAIN = {'GANCascadeRoIHead': 'CascadeRoIHead',
         'GANHybridTaskCascadeRoIHead': 'HybridTaskCascadeRoIHead'}


def stage_head_cfg(kind, **gan):
    """A small three-stage head of ``kind`` with both discriminators."""
    single = head_cfg()
    bbox_head = [dict(single['bbox_head'], reg_class_agnostic=True,
                      bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.] * 4,
                                      target_stds=stds),
                      loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0))
                 for _, _, stds in STAGES]
    train_cfg = [ConfigDict(single['train_cfg'],
                            assigner=dict(single['train_cfg'].assigner, pos_iou_thr=iou,
                                          neg_iou_thr=iou, min_pos_iou=iou,
                                          match_low_quality=False))
                 for _, iou, _ in STAGES]
    cfg = dict(single, type='GANCascadeRoIHead', num_stages=3,
               stage_loss_weights=[w for w, _, _ in STAGES], bbox_head=bbox_head,
               train_cfg=train_cfg)
    if kind.startswith('htc'):
        cfg.update(type='GANHybridTaskCascadeRoIHead', interleaved=True, mask_info_flow=True,
                   mask_head=[dict(single['mask_head'], type='HTCMaskHead',
                                   with_conv_res=s > 0) for s in range(3)])
    if kind == 'htc_semantic':
        cfg.update(semantic_roi_extractor=dict(
                       type='SingleRoIExtractor', out_channels=C, featmap_strides=[8],
                       roi_layer=dict(type='RoIAlign', output_size=14, sampling_ratio=2)),
                   semantic_head=dict(
                       type='FusedSemanticHead', num_ins=2, fusion_level=1,
                       seg_scale_factor=1 / 8, num_convs=1, in_channels=C,
                       conv_out_channels=C, num_classes=NUM_CLASSES,
                       loss_seg=dict(type='CrossEntropyLoss', ignore_index=255,
                                     loss_weight=0.2)))
    cfg.update(gan)
    return cfg


def stage_batch(kind, dtype=torch.float32):
    x, proposals, samples = make_batch()
    for p in proposals:
        p.bboxes = p.bboxes.to(dtype)
    for s in samples:
        s.gt_instances.bboxes = s.gt_instances.bboxes.to(dtype)
        if kind == 'htc_semantic':
            seg = np.zeros((1, IMG, IMG), dtype=np.int64)
            for k, (x1, y1, x2, y2) in enumerate(s.gt_instances.bboxes.int().tolist()):
                seg[0, y1:y2, x1:x2] = int(s.gt_instances.labels[k])
            s.gt_sem_seg = PixelData(sem_seg=torch.from_numpy(seg))
    return tuple(f.to(dtype) for f in x), proposals, samples


def build(kind, dtype=torch.float32, **gan):
    torch.manual_seed(0)
    head = MODELS.build(stage_head_cfg(kind, **gan)).to(dtype)
    head.train()
    return head


def gan_losses(head, batch, seed=0):
    x, proposals, samples = batch
    torch.manual_seed(seed)  # the RoI samplers draw from torch's generator
    with head.generator_pass(1.0) as gen_pass:
        losses = head.loss(x, copy.deepcopy(proposals), samples)
    return losses, gen_pass.inputs


def directional_check(loss_fn, param, seed):
    """``d loss / d param`` along a random direction: autograd against central
    finite differences (float64). The losses are piecewise smooth (PrRoIPool's max
    over levels, LeakyReLU, boxes clipped to the image): a kink within one step
    spoils that step only, so the match is asked at one of two steps."""
    analytic, = torch.autograd.grad(loss_fn(), param)
    direction = torch.randn(param.shape, dtype=param.dtype,
                            generator=torch.Generator().manual_seed(seed))
    analytic = (analytic * direction).sum().item()
    numeric = []
    for h in (1e-6, 1e-7):
        with torch.no_grad():
            param += h * direction
            plus = loss_fn()
            param -= 2 * h * direction
            minus = loss_fn()
            param += h * direction
        numeric.append(((plus - minus) / (2 * h)).item())
    assert all(n != 0 for n in numeric)
    assert any(analytic == pytest.approx(n, rel=1e-6) for n in numeric), (analytic, numeric)


@pytest.mark.parametrize('kind', KINDS)
def test_box_term_reaches_each_stage_bbox_pred_through_the_coordinates(kind):
    head = build(kind, torch.float64, box_stages='all')
    for d in head.discriminators():
        d.requires_grad_(False)
    batch = stage_batch(kind, torch.float64)
    for stage in range(3):
        name = f's{stage}.loss_g_box'
        bbox_head = head.bbox_head[stage]
        directional_check(lambda: gan_losses(head, batch)[0][name],
                          bbox_head.fc_reg.bias, seed=stage)
        grads = torch.autograd.grad(gan_losses(head, batch)[0][name],
                                    [bbox_head.fc_reg.weight, bbox_head.fc_cls.weight],
                                    allow_unused=True)
        assert grads[0].abs().sum() > 0 and grads[1] is None  # coordinates only


@pytest.mark.parametrize('kind', KINDS)
def test_mask_term_reaches_each_stage_mask_head(kind):
    head = build(kind, torch.float64)
    for d in head.discriminators():
        d.requires_grad_(False)
    batch = stage_batch(kind, torch.float64)
    for stage in range(3):
        name = f's{stage}.loss_g_mask'
        directional_check(lambda: gan_losses(head, batch)[0][name],
                          head.mask_head[stage].conv_logits.bias, seed=stage)
        # the mask term never pulls on the box regression
        grad, = torch.autograd.grad(gan_losses(head, batch)[0][name],
                                    head.bbox_head[stage].fc_reg.weight, allow_unused=True)
        assert grad is None


@pytest.mark.parametrize('kind', KINDS)
def test_default_stages_and_their_log_names(kind):
    """Box term on the last stage, mask term on every stage, each named and
    weighted per stage as mmdet names and weights a stage's losses; the
    discriminator step's losses per stage, each divided by its number of stages."""
    head = build(kind)
    assert head.box_stages == (2, ) and head.mask_stages == (0, 1, 2)
    losses, inputs = gan_losses(head, stage_batch(kind))
    adversarial = {k for k in losses if '_g_' in k}
    assert adversarial == {'s2.loss_g_box'} | {f's{s}.{n}' for s in range(3) for n in (
        'loss_g_mask', 'l1_g_mask_input', 'l1_g_mask_layers')}
    assert set(inputs) == {('box', 2), ('mask', 0), ('mask', 1), ('mask', 2)}
    with torch.no_grad():
        unweighted = head.mask_discriminator.loss_generator(*inputs[('mask', 1)])['loss']
    assert losses['s1.loss_g_mask'].item() == pytest.approx(0.5 * unweighted.item(), rel=1e-5)
    out = head.discriminator_loss(inputs)
    assert set(out) == {'s2.loss_d_box', 's2.acc_d_box_real', 's2.acc_d_box_fake',
                        'drift_d_box', 'drift_d_mask'} | {
        f's{s}.{n}' for s in range(3) for n in ('loss_d_mask', 'dist_d_mask')}
    for s in range(3):
        assert out[f's{s}.loss_d_mask'].item() == pytest.approx(
            -out[f's{s}.dist_d_mask'].item() / 3, rel=1e-5)


@pytest.mark.parametrize('kind', KINDS)
def test_outside_a_pass_and_in_prediction_exactly_the_mmdet_head(kind):
    gan = build(kind)
    cfg = stage_head_cfg(kind)
    cfg['type'] = PLAIN[cfg['type']]
    for key in ('box_discriminator', 'mask_discriminator', 'disc_roi_extractor'):
        cfg.pop(key)
    plain = MODELS.build(cfg)
    missing, unexpected = plain.load_state_dict(gan.state_dict(), strict=False)
    assert not missing and all('discriminator' in k for k in unexpected)
    x, proposals, samples = stage_batch(kind)
    for head in (gan, plain):
        head.train()
    torch.manual_seed(0)
    ours = gan.loss(x, copy.deepcopy(proposals), samples)
    torch.manual_seed(0)
    ref = plain.loss(x, copy.deepcopy(proposals), samples)
    assert ours.keys() == ref.keys()
    for key in ref:
        assert torch.equal(torch.as_tensor(ours[key]), torch.as_tensor(ref[key])), key
    gan.eval(), plain.eval()
    with torch.no_grad():
        ours = gan.predict(x, copy.deepcopy(proposals), samples, rescale=False)
        ref = plain.predict(x, copy.deepcopy(proposals), samples, rescale=False)
    for a, b in zip(ours, ref):
        assert len(b) > 0
        for key in ('bboxes', 'scores', 'labels', 'masks'):
            assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize('key, value', [('box_stages', [3]), ('box_stages', [0, 0]),
                                        ('mask_stages', 'first'), ('mask_stages', []),
                                        ('box_stages', [True])])
def test_a_stage_list_that_does_not_fit_the_head_stops_at_build(key, value):
    with pytest.raises(ValueError, match=rf"{key} must be 'all', 'last' or distinct stage "
                                         r'indices in \[0, 1, 2\] \(GANCascadeRoIHead has 3 '
                                         rf'stage\(s\)\), got {re.escape(repr(value))}'):
        MODELS.build(stage_head_cfg('cascade', **{key: value}))


def test_a_mask_term_on_a_head_without_masks_stops_at_build():
    with pytest.raises(ValueError, match='mask_discriminator needs a mask_head, got '
                                         'mask_head=None in GANCascadeRoIHead'):
        MODELS.build(stage_head_cfg('cascade', mask_head=None, mask_roi_extractor=None))
    box_only = MODELS.build(stage_head_cfg('cascade', mask_head=None, mask_roi_extractor=None,
                                           mask_discriminator=None, box_stages=[0, 2]))
    assert box_only.box_stages == (0, 2)
