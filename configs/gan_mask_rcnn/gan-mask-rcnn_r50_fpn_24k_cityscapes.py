# GAN Mask R-CNN R50-FPN on Cityscapes: thesis Tables 4.3 (box AP 42.3) and 4.4
# (mask AP 41.6) on the val set, against 40.6 and 40.3 for Mask R-CNN
# (mask-rcnn_r50_fpn_24k_cityscapes.py, same data, backbone and schedule). Only the
# GAN parts differ (../_base_/gan_mask_rcnn.py).
_base_ = ['./mask-rcnn_r50_fpn_24k_cityscapes.py', '../_base_/gan_mask_rcnn.py']
custom_imports = dict(imports=['gan_mask_rcnn'], allow_failed_imports=False)

model = dict(type='GANMaskRCNN', roi_head=_base_.gan_roi_head)
optim_wrapper = dict(_base_.gan_optim_wrapper,
                     generator=dict(optimizer=_base_.optim_wrapper.optimizer))
