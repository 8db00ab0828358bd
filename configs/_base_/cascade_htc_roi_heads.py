# The RoI heads of mmdet's Cascade Mask R-CNN (mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py)
# and HTC without the semantic branch (mmdet::htc/htc-without-semantic_r50_fpn_1x_coco.py),
# for the CPU configs whose base is a Mask R-CNN config of this project: MMEngine
# forbids two bases that both define `model`, so these name the heads apart and a
# config puts them in its model with its number of classes. Three stages with IoU
# thresholds 0.5, 0.6, 0.7, each box coder tighter than the last, class-agnostic
# regression; HTC's mask heads pass features from stage to stage.
cascade_stages = [
    # (loss weight, IoU threshold, box coder target_stds)
    (1, 0.5, [0.1, 0.1, 0.2, 0.2]),
    (0.5, 0.6, [0.05, 0.05, 0.1, 0.1]),
    (0.25, 0.7, [0.033, 0.033, 0.067, 0.067]),
]
cascade_roi_head = dict(
    type='CascadeRoIHead',
    num_stages=len(cascade_stages),
    stage_loss_weights=[weight for weight, _, _ in cascade_stages],
    bbox_roi_extractor=dict(
        type='SingleRoIExtractor',
        roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0),
        out_channels=256, featmap_strides=[4, 8, 16, 32]),
    bbox_head=[
        dict(type='Shared2FCBBoxHead', in_channels=256, fc_out_channels=1024,
             roi_feat_size=7, num_classes=80,
             bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.],
                             target_stds=stds),
             reg_class_agnostic=True,
             loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
             loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0))
        for _, _, stds in cascade_stages
    ],
    mask_roi_extractor=dict(
        type='SingleRoIExtractor',
        roi_layer=dict(type='RoIAlign', output_size=14, sampling_ratio=0),
        out_channels=256, featmap_strides=[4, 8, 16, 32]),
    mask_head=dict(
        type='FCNMaskHead', num_convs=4, in_channels=256, conv_out_channels=256,
        num_classes=80,
        loss_mask=dict(type='CrossEntropyLoss', use_mask=True, loss_weight=1.0)))
cascade_rcnn_train_cfg = [
    dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=iou, neg_iou_thr=iou,
                       min_pos_iou=iou, match_low_quality=False, ignore_iof_thr=-1),
         sampler=dict(type='RandomSampler', num=512, pos_fraction=0.25, neg_pos_ub=-1,
                      add_gt_as_proposals=True),
         mask_size=28, pos_weight=-1, debug=False)
    for _, iou, _ in cascade_stages
]
# HTC: interleaved box and mask branches, mask information flow from stage to stage.
htc_roi_head = dict(
    cascade_roi_head,
    type='HybridTaskCascadeRoIHead',
    interleaved=True,
    mask_info_flow=True,
    mask_head=[
        dict(cascade_roi_head['mask_head'], type='HTCMaskHead', with_conv_res=stage > 0)
        for stage in range(len(cascade_stages))
    ])
