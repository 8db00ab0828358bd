# GAN Mask R-CNN sized for a 2-core CPU on GlaS-cc (../shared/data/glas_cc): the
# baseline mask-rcnn_r18_fpn_glas-cpu.py (same data, backbone, schedule) plus the GAN
# parts of ../_base_/gan_mask_rcnn.py, with the warm-up and ramp of
# gan-mask-rcnn_r18_fpn_shapes-cpu.py (R18 from scratch: a CPU-scale choice).
_base_ = ['./mask-rcnn_r18_fpn_glas-cpu.py', '../_base_/gan_mask_rcnn.py']

model = dict(type='GANMaskRCNN', roi_head=_base_.gan_roi_head)
optim_wrapper = dict(_base_.gan_optim_wrapper,
                     generator=dict(optimizer=_base_.optim_wrapper.optimizer,
                                    clip_grad=_base_.optim_wrapper.clip_grad))
param_scheduler = dict(_delete_=True, generator=_base_.param_scheduler,
                       discriminator=_base_.param_scheduler)
train_cfg = dict(_base_.gan_train_cfg, adv_start_iter=500, adv_weight_ramp_iters=100)
