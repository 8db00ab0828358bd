# GAN Mask R-CNN sized for a CPU on GlaS-cc (data/glas_cc/): the
# baseline mask-rcnn_r18_fpn_glas-cpu.py (same data, backbone, schedule) plus the GAN
# parts of ../_base_/gan_mask_rcnn.py, with the warm-up and ramp of
# gan-mask-rcnn_r18_fpn_shapes-cpu.py (R18 from scratch: a CPU-scale choice).
_base_ = ['./mask-rcnn_r18_fpn_glas-cpu.py', '../_base_/gan_mask_rcnn.py']

model = dict(type='GANMaskRCNN', roi_head=_base_.gan_roi_head,
             adv_start_fraction=0.25,  # plain Mask R-CNN in the first quarter
             adv_ramp_fraction=0.05)   # then the adversarial weights ramp to full
optim_wrapper = dict(_base_.gan_optim_wrapper,
                     generator=dict(optimizer=_base_.optim_wrapper.optimizer,
                                    clip_grad=_base_.optim_wrapper.clip_grad))
