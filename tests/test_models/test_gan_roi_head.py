"""GANRoIHead: adversarial terms inside a generator pass, exactly StandardRoIHead
otherwise (keeping nothing).

References: mmdet's own StandardRoIHead (same weights, same random state), the
ground-truth boxes (decoding the encoded targets), finite differences, and which
parameters may receive gradients."""
import copy

import numpy as np
import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData

from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmdet.utils import register_all_modules

import gan_mask_rcnn  # noqa: F401  (registers the GAN modules)

register_all_modules(init_default_scope=False)

C = 8
NUM_CLASSES = 3
IMG = 64


def head_cfg(**gan):
    extractor = dict(type='SingleRoIExtractor', out_channels=C, featmap_strides=[4, 8])
    cfg = dict(
        type='GANRoIHead',
        bbox_roi_extractor=dict(extractor, roi_layer=dict(type='RoIAlign', output_size=7,
                                                          sampling_ratio=2)),
        bbox_head=dict(
            type='Shared2FCBBoxHead', in_channels=C, fc_out_channels=16, roi_feat_size=7,
            num_classes=NUM_CLASSES,
            bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.] * 4,
                            target_stds=[0.1, 0.1, 0.2, 0.2]),
            reg_class_agnostic=False,
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
        mask_roi_extractor=dict(extractor, roi_layer=dict(type='RoIAlign', output_size=14,
                                                          sampling_ratio=2)),
        mask_head=dict(type='FCNMaskHead', num_convs=1, in_channels=C, conv_out_channels=8,
                       num_classes=NUM_CLASSES,
                       loss_mask=dict(type='CrossEntropyLoss', use_mask=True,
                                      loss_weight=1.0)),
        train_cfg=ConfigDict(
            assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5,
                          min_pos_iou=0.5, match_low_quality=True, ignore_iof_thr=-1),
            sampler=dict(type='RandomSampler', num=32, pos_fraction=0.25, neg_pos_ub=-1,
                         add_gt_as_proposals=True),
            mask_size=28, pos_weight=-1, debug=False),
        test_cfg=ConfigDict(score_thr=0.0, nms=dict(type='nms', iou_threshold=0.5),
                      max_per_img=20, mask_thr_binary=0.5),
        box_discriminator=dict(type='BoxDiscriminator', in_channels=C, channels=(8,) * 5),
        mask_discriminator=dict(type='MaskDiscriminator', in_channels=C, channels=(8,) * 5),
        disc_roi_extractor=dict(type='PrRoIExtractor', out_channels=C, featmap_strides=[4, 8],
                                roi_layer=dict(type='PrRoIPool', output_size=28),
                                level_mode='max'))
    cfg.update(gan)
    return cfg


def standard_cfg():
    cfg = head_cfg()
    for key in ('box_discriminator', 'mask_discriminator', 'disc_roi_extractor'):
        cfg.pop(key)
    cfg['type'] = 'StandardRoIHead'
    return cfg


def make_batch(seed=0, num_imgs=2, add_gt_proposals=True):
    """Features, proposals and data samples of ``num_imgs`` 64x64 images."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(num_imgs, C, IMG // 4, IMG // 4, generator=g),
         torch.randn(num_imgs, C, IMG // 8, IMG // 8, generator=g))
    samples, proposals = [], []
    for _ in range(num_imgs):
        xy = torch.randint(0, IMG // 2, (3, 2), generator=g).float()
        wh = torch.randint(12, IMG // 2, (3, 2), generator=g).float()
        boxes = torch.cat([xy, (xy + wh).clamp(max=IMG - 1)], 1)
        masks = np.zeros((3, IMG, IMG), dtype=np.uint8)
        for k, (x1, y1, x2, y2) in enumerate(boxes.int().tolist()):
            masks[k, y1 + 2:y2 - 2, x1 + 2:x2 - 2] = 1
        sample = DetDataSample(metainfo=dict(img_shape=(IMG, IMG), ori_shape=(IMG, IMG),
                                             pad_shape=(IMG, IMG), scale_factor=(1., 1.)))
        sample.gt_instances = InstanceData(
            bboxes=boxes, labels=torch.randint(0, NUM_CLASSES, (3,), generator=g),
            masks=BitmapMasks(masks, IMG, IMG))
        samples.append(sample)
        jitter = torch.randn(20, 4, generator=g) * 3
        props = (boxes.repeat(7, 1)[:20] + jitter).clamp(0, IMG - 1)
        props[:, 2:] = torch.maximum(props[:, 2:], props[:, :2] + 2)
        proposals.append(InstanceData(bboxes=props, scores=torch.rand(20, generator=g)))
    return x, proposals, samples


def run_loss(head, batch, seed=0):
    """The head's losses outside a generator pass (a plain head)."""
    x, proposals, samples = batch
    torch.manual_seed(seed)  # the RoI sampler draws from torch's generator
    return head.loss(x, copy.deepcopy(proposals), samples)


def run_gan_loss(head, batch, seed=0, scale=1.0):
    """The head's losses in a generator pass, and the discriminators' inputs."""
    with head.generator_pass(scale) as gen_pass:
        losses = run_loss(head, batch, seed)
    return losses, gen_pass.inputs


@pytest.fixture
def heads():
    torch.manual_seed(0)
    gan = MODELS.build(head_cfg())
    std = MODELS.build(standard_cfg())
    missing, unexpected = std.load_state_dict(gan.state_dict(), strict=False)
    assert not missing and all('discriminator' in k for k in unexpected)
    gan.train(), std.train()
    return gan, std


def test_outside_a_generator_pass_is_exactly_standard_roi_head_keeping_nothing(heads):
    """A ``loss`` call outside a GAN step (e.g. a validation-loss hook) is plain:
    StandardRoIHead's losses, no discriminator runs, and no tensor stays on the
    head afterwards (nor after a generator pass)."""
    gan, std = heads
    batch = make_batch()
    calls = []
    for module in gan.discriminators() + [gan.disc_roi_extractor]:
        module.register_forward_pre_hook(lambda m, args: calls.append(type(m).__name__))
    ours = run_loss(gan, batch)
    ref = run_loss(std, batch)
    assert ours.keys() == ref.keys()
    for key in ref:
        assert torch.equal(ours[key], ref[key]), key
    assert not calls
    before = dict(vars(gan))
    run_gan_loss(gan, batch)
    assert calls  # the pass ran the discriminators
    assert gan._generator_pass is None
    assert vars(gan).keys() == before.keys()
    changed = [k for k, v in vars(gan).items() if v is not before[k]]
    assert not changed, changed


def test_adversarial_adds_generator_terms_only(heads):
    gan, std = heads
    batch = make_batch()
    (ours, _), ref = run_gan_loss(gan, batch), run_loss(std, batch)
    # two generator terms, and two logged parts of the mask critic's L_G
    assert set(ours) - set(ref) == {'loss_g_box', 'loss_g_mask', 'l1_g_mask_input',
                                    'l1_g_mask_layers'}
    for key in ref:
        assert torch.equal(ours[key], ref[key]), key
    assert ours['loss_g_box'] > 0 and ours['loss_g_mask'] > 0


def test_predict_is_exactly_standard_roi_head(heads):
    """Same detections as StandardRoIHead (and some: score_thr=0), and no
    discriminator or discriminator pooling runs."""
    gan, std = heads
    gan.eval(), std.eval()
    x, proposals, samples = make_batch()
    calls = []
    for module in gan.discriminators() + [gan.disc_roi_extractor]:
        module.register_forward_pre_hook(lambda m, args: calls.append(type(m).__name__))
    with torch.no_grad():
        ours = gan.predict(x, copy.deepcopy(proposals), samples, rescale=False)
        ref = std.predict(x, copy.deepcopy(proposals), samples, rescale=False)
    assert len(ours) == len(ref) == 2
    for a, b in zip(ours, ref):
        assert len(b) > 0 and b.masks.shape == (len(b), IMG, IMG)
        for key in ('bboxes', 'scores', 'labels', 'masks'):
            assert torch.equal(a[key], b[key]), key
    assert not calls


def test_box_generator_gradient_reaches_bbox_pred_only(heads):
    gan, _ = heads
    for d in gan.discriminators():
        d.requires_grad_(False)
    run_gan_loss(gan, make_batch())[0]['loss_g_box'].backward()
    assert gan.bbox_head.fc_reg.weight.grad.abs().sum() > 0
    assert gan.bbox_head.fc_cls.weight.grad is None  # only through the coordinates
    assert gan.mask_head.conv_logits.weight.grad is None
    for name, p in gan.named_parameters():
        if 'discriminator' in name:
            assert p.grad is None, name


def test_box_generator_gradient_matches_finite_differences(heads):
    gan, _ = heads
    gan.double()
    x, proposals, samples = make_batch()
    x = tuple(f.double() for f in x)
    for p in proposals:
        p.bboxes = p.bboxes.double()
    for s in samples:
        s.gt_instances.bboxes = s.gt_instances.bboxes.double()
    for d in gan.discriminators():
        d.requires_grad_(False)
    bias = gan.bbox_head.fc_reg.bias

    def loss_g():
        return run_gan_loss(gan, (x, proposals, samples))[0]['loss_g_box']

    loss_g().backward()
    # piecewise smooth (PrRoIPool bins, max over levels, LeakyReLU): a small step
    h = 1e-6
    for seed in range(3):
        direction = torch.randn(bias.shape, dtype=torch.float64,
                                generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            bias += h * direction
            plus = loss_g()
            bias -= 2 * h * direction
            minus = loss_g()
            bias += h * direction
        numeric = ((plus - minus) / (2 * h)).item()
        analytic = (bias.grad * direction).sum().item()
        assert numeric != 0
        assert analytic == pytest.approx(numeric, rel=1e-6)


def test_mask_generator_gradient_reaches_only_gt_class_logits(heads):
    gan, _ = heads
    batch = make_batch()
    for d in gan.discriminators():
        d.requires_grad_(False)
    run_gan_loss(gan, batch)[0]['loss_g_mask'].backward()
    labels = set(torch.cat([s.gt_instances.labels for s in batch[2]]).tolist())
    grad = gan.mask_head.conv_logits.weight.grad.flatten(1).abs().sum(1)
    with_grad = {cls for cls in range(NUM_CLASSES) if grad[cls] > 0}
    assert with_grad and with_grad <= labels, (with_grad, labels)
    assert gan.bbox_head.fc_reg.weight.grad is None


def test_no_positive_samples_gives_zero_connected_terms(heads):
    gan, _ = heads
    gan.train_cfg.sampler.add_gt_as_proposals = False
    gan.init_assigner_sampler()
    x, proposals, samples = make_batch()
    for p in proposals:  # proposals far from every object: no positives
        p.bboxes = torch.tensor([[0., 0., 2., 2.]]).repeat(len(p.bboxes), 1)
    for s in samples:
        s.gt_instances.bboxes[:] = torch.tensor([40., 40., 60., 60.])
    for d in gan.discriminators():
        d.requires_grad_(False)
    losses, inputs = run_gan_loss(gan, (x, proposals, samples))
    assert losses['loss_g_box'].item() == 0 and losses['loss_g_mask'].item() == 0
    assert inputs == {}
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    for d in gan.discriminators():
        d.requires_grad_(True)
    d_losses = gan.discriminator_loss(inputs)
    assert set(d_losses) == {'loss_d_box', 'loss_d_mask', 'drift_d_box', 'drift_d_mask'}
    (d_losses['loss_d_box'] + d_losses['loss_d_mask']).backward()
    for d in gan.discriminators():
        assert all(p.grad is not None and p.grad.abs().sum() == 0 for p in d.parameters())


def test_discriminator_loss_on_the_passed_inputs(heads):
    gan, _ = heads
    for d in gan.discriminators():
        d.requires_grad_(False)
    _, inputs = run_gan_loss(gan, make_batch())
    for d in gan.discriminators():
        d.requires_grad_(True)
    assert set(inputs) == {('box', 0), ('mask', 0)}
    # the pooled 28x28x256 inputs come channels-last (the convolutions' fast layout)
    for key, pooled in (('box', 0), ('box', 1), ('mask', 0)):
        assert inputs[(key, 0)][pooled].is_contiguous(memory_format=torch.channels_last), key
    out = gan.discriminator_loss(inputs)
    assert set(out) == {'loss_d_box', 'acc_d_box_real', 'acc_d_box_fake',
                        'loss_d_mask', 'dist_d_mask', 'drift_d_box', 'drift_d_mask'}
    assert out['loss_d_mask'].item() == pytest.approx(-out['dist_d_mask'].item())
    assert 0 <= out['acc_d_box_real'] <= 1 and 0 <= out['acc_d_box_fake'] <= 1
    (out['loss_d_box'] + out['loss_d_mask']).backward()
    # the inputs are detached: only discriminator parameters get gradients
    for name, p in gan.named_parameters():
        assert (p.grad is not None) == ('discriminator' in name), name


def test_build_errors_say_what_to_write():
    with pytest.raises(ValueError, match="box_discriminator=dict\\(type='BoxDiscriminator'\\)"):
        MODELS.build(head_cfg(box_discriminator=None, mask_discriminator=None))
    with pytest.raises(ValueError, match='disc_roi_extractor'):
        MODELS.build(head_cfg(disc_roi_extractor=None))
    cfg = head_cfg(mask_head=None, mask_roi_extractor=None)
    with pytest.raises(ValueError, match='mask_discriminator needs a mask_head, got '
                                         'mask_head=None in GANRoIHead: drop'):
        MODELS.build(cfg)
    only_box = MODELS.build(head_cfg(mask_discriminator=None))
    assert only_box.discriminator_names() == ['box_discriminator']
    with pytest.raises(ValueError, match=r"box_stages must be 'all', 'last' or distinct "
                                         r'stage indices in \[0\] \(GANRoIHead has 1 '
                                         r'stage\(s\)\), got \[1\]'):
        MODELS.build(head_cfg(box_stages=[1]))
