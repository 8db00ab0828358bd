# gan-mask-rcnn_r50_fpn_2k_glas.py with the box and mask heads pooling the maximum over
# all FPN levels, as the author's code does (../_base_/max_level_pooling.py).
# Against gan-mask-rcnn_r50_fpn_2k_glas.py it shows the pooling's effect; against
# mask-rcnn_r50_fpn_max-levels_2k_glas.py, the GAN's with this pooling.
_base_ = ['./gan-mask-rcnn_r50_fpn_2k_glas.py', '../_base_/max_level_pooling.py']

model = dict(roi_head=_base_.max_level_roi_head)
