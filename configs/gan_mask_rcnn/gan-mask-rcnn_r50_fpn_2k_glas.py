# GAN Mask R-CNN R50-FPN on GlaS: thesis Tables 4.6 (box AP 58.6) and 4.7 (mask AP
# 61.6) on the test set, against 56.9 and 58.9 for Mask R-CNN
# (mask-rcnn_r50_fpn_2k_glas.py, same data, backbone and schedule). Only the GAN
# parts differ (../_base_/gan_mask_rcnn.py).
_base_ = ['./mask-rcnn_r50_fpn_2k_glas.py', '../_base_/gan_mask_rcnn.py']

model = dict(type='GANMaskRCNN', roi_head=_base_.gan_roi_head)
optim_wrapper = dict(_base_.gan_optim_wrapper,
                     generator=dict(optimizer=_base_.optim_wrapper.optimizer))
