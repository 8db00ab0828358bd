# HTC without the semantic branch, sized for a CPU: the Cascade Mask R-CNN of
# ../gan_cascade_rcnn/cascade-mask-rcnn_r18_fpn_glas-cpu.py (R18-FPN, data, schedule,
# 128 RoIs per stage) with HTC's interleaved branches and mask information flow
# (../_base_/cascade_htc_roi_heads.py). Not a thesis setting: the baseline of
# gan-htc-without-semantic_r18_fpn_glas-cpu.py.
_base_ = '../gan_cascade_rcnn/cascade-mask-rcnn_r18_fpn_glas-cpu.py'

model = dict(
    type='HybridTaskCascade',
    roi_head=dict(
        type='HybridTaskCascadeRoIHead',
        interleaved=_base_.htc_roi_head.interleaved,
        mask_info_flow=_base_.htc_roi_head.mask_info_flow,
        mask_head=[dict(head, num_classes=_base_.num_classes)
                   for head in _base_.htc_roi_head.mask_head]))
