# Cascade Mask R-CNN trained with the GAN loss of GAN Mask R-CNN, sized for a
# CPU: the baseline cascade-mask-rcnn_r18_fpn_glas-cpu.py (same data, backbone, schedule)
# plus the GAN parts of ../_base_/gan_mask_rcnn.py, with the warm-up and ramp of the
# Mask R-CNN CPU configs (R18 from scratch: a CPU-scale choice). Box term on the last
# stage, mask term on every stage (GANCascadeRoIHead's defaults).
_base_ = ['./cascade-mask-rcnn_r18_fpn_glas-cpu.py', '../_base_/gan_mask_rcnn.py']

model = dict(type='GANCascadeRCNN',
             roi_head=dict(_base_.gan_roi_head, type='GANCascadeRoIHead'),
             adv_start_fraction=0.25,  # plain detector in the first quarter
             adv_ramp_fraction=0.05)   # then the adversarial weights ramp to full
optim_wrapper = dict(_base_.gan_optim_wrapper,
                     generator=dict(optimizer=_base_.optim_wrapper.optimizer,
                                    clip_grad=_base_.optim_wrapper.clip_grad))
