# GAN Mask R-CNN sized for a CPU on the synthetic shapes set: the baseline
# mask-rcnn_r18_fpn_shapes-cpu.py (same data, backbone, schedule) plus the GAN parts
# of ../_base_/gan_mask_rcnn.py (discriminators, D's SGD at base_lr / 5).
# Unlike the thesis (ImageNet backbone, adversarial from the start), the R18 here
# starts from scratch, so the first quarter is plain Mask R-CNN and the adversarial
# weights then ramp up: a CPU-scale choice, not the author's.
_base_ = ['./mask-rcnn_r18_fpn_shapes-cpu.py', '../_base_/gan_mask_rcnn.py']

model = dict(type='GANMaskRCNN', roi_head=_base_.gan_roi_head,
             adv_start_fraction=0.25,  # plain Mask R-CNN in the first quarter
             adv_ramp_fraction=0.05)   # then the adversarial weights ramp to full
optim_wrapper = dict(_base_.gan_optim_wrapper,
                     generator=dict(optimizer=_base_.optim_wrapper.optimizer,
                                    clip_grad=_base_.optim_wrapper.clip_grad))
