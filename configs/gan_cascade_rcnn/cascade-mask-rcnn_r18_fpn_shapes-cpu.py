# Cascade Mask R-CNN sized for a CPU on the synthetic shapes set: the R18-FPN,
# data and schedule of ../gan_mask_rcnn/mask-rcnn_r18_fpn_shapes-cpu.py with mmdet's
# three-stage cascade RoI head (../_base_/cascade_htc_roi_heads.py), 128 sampled RoIs
# per stage. Not a thesis setting: the baseline of gan-cascade-mask-rcnn_r18_fpn_shapes-cpu.py.
_base_ = ['../gan_mask_rcnn/mask-rcnn_r18_fpn_shapes-cpu.py', '../_base_/cascade_htc_roi_heads.py']

model = dict(
    type='CascadeRCNN',
    roi_head=dict(
        _base_.cascade_roi_head, _delete_=True,
        bbox_head=[dict(head, num_classes=_base_.num_classes)
                   for head in _base_.cascade_roi_head.bbox_head],
        mask_head=dict(_base_.cascade_roi_head.mask_head, num_classes=_base_.num_classes)),
    train_cfg=dict(rcnn=[dict(stage, sampler=dict(stage.sampler, num=128))
                         for stage in _base_.cascade_rcnn_train_cfg]))
