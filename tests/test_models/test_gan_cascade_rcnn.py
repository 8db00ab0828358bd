"""GANCascadeRCNN and GANHybridTaskCascade through their R18 CPU configs: the GAN
step sends no generator gradient to a discriminator and no discriminator gradient
to the detector, logs per stage, predicts exactly as mmdet's detector with the same
weights; a plain RoI head or a detector that is not two-stage stops at build.

References: which parameters hold gradients at each optimizer step, mmdet's
CascadeRCNN / HybridTaskCascade built from the baseline configs."""
import copy

import pytest
import torch
from gan_testing import STAGE_PAIRS, build, params, plain_model_cfg, set_iter, tiny_stage_cfg
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from gan_mask_rcnn.gan_two_stage_detector import GANTwoStageDetectorMixin
from mmdet.models.detectors import RetinaNet
from mmdet.registry import MODELS


@pytest.fixture(scope='module', params=sorted(STAGE_PAIRS))
def setup(request, shapes_root, tmp_path_factory):
    init_default_scope('mmdet')
    kind = request.param
    cfg = tiny_stage_cfg(STAGE_PAIRS[kind][1], shapes_root,
                         str(tmp_path_factory.mktemp(f'gan_{kind}')))
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
    return cfg, next(iter(loader))


def test_no_gradient_crosses_between_detector_and_discriminators(setup):
    cfg, batch = setup
    model = build(cfg)
    ow = build_optim_wrapper(model, cfg.optim_wrapper)
    disc = {id(p) for d in model.roi_head.discriminators() for p in d.parameters()}
    seen = {}

    def spy(side):
        step = ow[side].step

        def spied(**kwargs):
            seen[side] = {('disc' if id(p) in disc else 'detector')
                                   for p in model.parameters() if p.grad is not None}
            step(**kwargs)
        ow[side].step = spied

    spy('generator'), spy('discriminator')
    before = params(model)
    set_iter(1, max_iters=2)  # adversarial at full weight
    log = model.train_step(copy.deepcopy(batch), ow)
    assert seen['generator'] == {'detector'}  # no G gradient on a discriminator
    assert seen['discriminator'] == {'disc'}  # no D gradient on the detector
    for key in ('s2.loss_g_box', 's0.loss_g_mask', 's2.loss_g_mask', 's2.loss_d_box',
                's1.loss_d_mask', 's2.acc_d_box_real', 'drift_d_box'):
        assert key in log and torch.isfinite(log[key]), key
    assert not any(k.startswith(('s0.loss_g_box', 's1.loss_g_box')) for k in log)
    changed = {n for n, v in params(model).items() if not torch.equal(v, before[n])}
    for part in ('box_discriminator', 'mask_discriminator', 'backbone', 'bbox_head.2',
                 'mask_head.0'):
        assert any(part in n for n in changed), part


def test_prediction_equals_the_mmdet_detector_with_the_same_weights(setup):
    cfg, _ = setup
    gan, plain = build(cfg), build(cfg, plain=True)
    assert type(plain).__name__ in ('CascadeRCNN', 'HybridTaskCascade')
    missing, unexpected = plain.load_state_dict(gan.state_dict(), strict=False)
    assert not missing and all('discriminator' in k for k in unexpected)
    test_cfg = dict(cfg.test_dataloader, num_workers=0, persistent_workers=False)
    batch = next(iter(Runner.build_dataloader(test_cfg, seed=0)))  # the val images
    gan.eval(), plain.eval()
    with torch.no_grad():
        ours, ref = gan.test_step(copy.deepcopy(batch)), plain.test_step(copy.deepcopy(batch))
    for a, b in zip(ours, ref):
        a, b = a.pred_instances, b.pred_instances
        assert len(b) > 0
        for key in ('bboxes', 'scores', 'labels', 'masks'):
            assert torch.equal(a[key], b[key]), key


def test_a_plain_roi_head_names_the_gan_head(setup):
    cfg, _ = setup
    bad = dict(cfg.model, roi_head=plain_model_cfg(cfg.model).roi_head)
    gan_head = cfg.model.roi_head.type
    with pytest.raises(TypeError, match=rf"needs roi_head=dict\(type='{gan_head}'"):
        MODELS.build(bad)


def test_a_detector_that_is_not_two_stage_stops_at_build():
    class GANRetinaNet(GANTwoStageDetectorMixin, RetinaNet):
        pass

    with pytest.raises(TypeError, match='GANRetinaNet: the GAN step needs an mmdet '
                                        'TwoStageDetector'):
        GANRetinaNet()
