# The GAN parts shared by the GAN Mask R-CNN configs (thesis section 3.2): the box
# and mask discriminators, the discriminator's optimizer and the data-parallel
# wrapper that runs the model's own train_step on every rank.
# The GAN schedule is the detector's: GANMaskRCNN(adv_start_fraction=0.0,
# adv_ramp_fraction=0.0, d_steps=1) are the author's settings and the defaults
# (adversarial from the first iteration, full weights at once, one discriminator
# update per generator update). Its points are fractions of train_cfg.max_iters,
# and the baseline's plain param_scheduler list drives both optimizers (MMEngine
# builds a plain list for every wrapper of an OptimWrapperDict), so
# train_cfg = dict(max_iters=N) moves the whole GAN schedule; the lr milestones,
# absolute as in mmdet, are restated as for the baseline: one list for both sides.
# Loss weights (box 0.025, mask 0.5) and the discriminator's SGD at base_lr / 5
# (0.002 for the thesis' base lr of 0.01) follow the author's maskrcnn-benchmark code.
#
# A GAN config inherits its Mask R-CNN baseline and this file and takes the parts
# by name (MMEngine forbids a key that two bases both define, so the parts that
# replace the baseline's `model` and `optim_wrapper` are named gan_*; the training
# loop stays the baseline's):
#
#   _base_ = ['./mask-rcnn_r50_fpn_2k_glas.py', '../_base_/gan_mask_rcnn.py']
#   model = dict(type='GANMaskRCNN', roi_head=_base_.gan_roi_head)
#   optim_wrapper = dict(_base_.gan_optim_wrapper,
#                        generator=dict(optimizer=_base_.optim_wrapper.optimizer))
gan_roi_head = dict(
    type='GANRoIHead',
    # loss_weight weighs each generator term L_G. d_loss_weight weighs the
    # discriminator's own loss L_D: 1.0 = unweighted (the thesis is silent); the
    # author's code uses the loss_weight values here too (0.025 / 0.5), which a
    # paramwise lr multiplier does not reproduce (weight decay does not scale).
    # joint_norm=True scores real and fake in one forward, so BatchNorm normalises
    # them together; False (thesis, author) runs one forward each. norm_cfg=dict(
    # type='GN', num_groups=16) or norm_cfg=None replace BatchNorm.
    box_discriminator=dict(type='BoxDiscriminator', in_channels=256, roi_size=28,
                           loss_weight=0.025, d_loss_weight=1.0, joint_norm=False),
    mask_discriminator=dict(type='MaskDiscriminator', in_channels=256, roi_size=28,
                            loss_weight=0.5, d_loss_weight=1.0, joint_norm=False),
    # Both discriminators see 28x28 PrRoIPool features of every FPN level, max-merged.
    disc_roi_extractor=dict(type='PrRoIExtractor',
                            roi_layer=dict(type='PrRoIPool', output_size=28),
                            out_channels=256, featmap_strides=[4, 8, 16, 32],
                            level_mode='max'),
    # None: every positive RoI reaches the discriminators (thesis). An int K feeds a
    # random K per image instead, which bounds the discriminators' cost (measured with
    # tools/analysis_tools/benchmark_gan_training.py; figures in projects/gan_mask_rcnn/results/).
    max_disc_rois_per_img=None)

# Replaces the baseline's optim_wrapper; a GAN config adds generator=dict(optimizer=
# <the baseline's optimizer>). `type` is shared by both sides, so mmdet's
# `tools/train.py --amp` turns both into AmpOptimWrapper (GPU only).
gan_optim_wrapper = dict(
    _delete_=True,
    constructor='GANOptimWrapperConstructor',
    type='OptimWrapper',
    discriminator=dict(
        optimizer=dict(type='SGD', lr=0.002, momentum=0.9, weight_decay=1e-4)))

# Multi-process training (`--launcher pytorch|slurm|mpi`) must call
# GANMaskRCNN.train_step on every rank: MMDistributedDataParallel would run a plain
# Mask R-CNN step. GradAllReduceDataParallel averages the gradients before each of
# the generator's and the discriminator's optimizer steps (gloo on CPU, NCCL on GPU).
model_wrapper_cfg = dict(type='GradAllReduceDataParallel')
