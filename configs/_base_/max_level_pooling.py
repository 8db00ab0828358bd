# The generator heads' pooling of the author's code (quangle2110/GAN_Mask-RCNN,
# `AdaptivePooler`): the box and mask heads pool every RoI from every FPN level and
# keep the element-wise maximum (PANet-style), instead of mmdet's one level per RoI
# chosen by its scale. The thesis text does not state it. Built here on
# PrRoIExtractor's max mode (PrRoIPool per level, then the maximum; the author pools
# each level with RoIAlign). The output sizes stay mmdet's (7 box, 14 mask).
#
# Merged into a config's RoI head, baseline and GAN alike, so that a pair trained
# with it and the pair without it tell the pooling's effect from the GAN's:
#
#   _base_ = ['./mask-rcnn_r18_fpn_glas-cpu.py', '../_base_/max_level_pooling.py']
#   model = dict(roi_head=_base_.max_level_roi_head)
max_level_roi_head = dict(
    bbox_roi_extractor=dict(
        _delete_=True, type='PrRoIExtractor', level_mode='max',
        roi_layer=dict(type='PrRoIPool', output_size=7),
        out_channels=256, featmap_strides=[4, 8, 16, 32]),
    mask_roi_extractor=dict(
        _delete_=True, type='PrRoIExtractor', level_mode='max',
        roi_layer=dict(type='PrRoIPool', output_size=14),
        out_channels=256, featmap_strides=[4, 8, 16, 32]))
