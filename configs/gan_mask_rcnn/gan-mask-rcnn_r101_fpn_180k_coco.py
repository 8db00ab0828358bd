# GAN Mask R-CNN R101-FPN on COCO 2017: thesis Table 4.5 (section 4.4), mask AP
# 36.8 on val2017 against 36.0 for Mask R-CNN (mask-rcnn_r101_fpn_180k_coco.py,
# same data, backbone and schedule). Only the GAN parts differ
# (../_base_/gan_mask_rcnn.py).
_base_ = ['./mask-rcnn_r101_fpn_180k_coco.py', '../_base_/gan_mask_rcnn.py']
custom_imports = dict(imports=['gan_mask_rcnn'], allow_failed_imports=False)

model = dict(type='GANMaskRCNN', roi_head=_base_.gan_roi_head)
optim_wrapper = dict(_base_.gan_optim_wrapper,
                     generator=dict(optimizer=_base_.optim_wrapper.optimizer))
