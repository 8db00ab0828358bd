# Cascade Mask R-CNN R50-FPN on COCO 2017 (mmdet's 1x schedule) trained with the GAN
# loss of GAN Mask R-CNN: mmdet's own cascade-mask-rcnn_r50_fpn_1x_coco.py plus the GAN
# parts of ../_base_/gan_mask_rcnn.py; box term on the last stage, mask term on all
# three (GANCascadeRoIHead's defaults). Not trained by the thesis.
_base_ = ['mmdet::cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py',
          '../_base_/gan_mask_rcnn.py']
custom_imports = dict(imports=['gan_mask_rcnn'], allow_failed_imports=False)

model = dict(type='GANCascadeRCNN', roi_head=dict(_base_.gan_roi_head, type='GANCascadeRoIHead'))
optim_wrapper = dict(_base_.gan_optim_wrapper,
                     generator=dict(optimizer=_base_.optim_wrapper.optimizer))
# mmdet's epoch-based loop stays: the GAN schedule reads the iteration and max_iters
# (epochs x iterations per epoch) from the MessageHub under any loop.
custom_hooks = [dict(type='ResumeCheckHook')]
