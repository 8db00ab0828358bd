# GAN Mask R-CNN R101-FPN on the phone recycling set: thesis Tables 4.1 (box AP 58.4)
# and 4.2 (mask AP 59.2) on its validation split, against 54.9 and 57.2 for Mask
# R-CNN (mask-rcnn_r101_fpn_27k_phone.py, same data, backbone and schedule). Only
# the GAN parts differ (../_base_/gan_mask_rcnn.py).
_base_ = ['./mask-rcnn_r101_fpn_27k_phone.py', '../_base_/gan_mask_rcnn.py']
custom_imports = dict(imports=['gan_mask_rcnn'], allow_failed_imports=False)

model = dict(type='GANMaskRCNN', roi_head=_base_.gan_roi_head)
optim_wrapper = dict(_base_.gan_optim_wrapper,
                     generator=dict(optimizer=_base_.optim_wrapper.optimizer))
