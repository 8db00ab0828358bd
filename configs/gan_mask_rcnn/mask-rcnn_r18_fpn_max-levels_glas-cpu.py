# mask-rcnn_r18_fpn_glas-cpu.py with the box and mask heads pooling the maximum over
# all FPN levels, as the author's code does (../_base_/max_level_pooling.py).
# Against mask-rcnn_r18_fpn_glas-cpu.py it shows the pooling's effect; against
# gan-mask-rcnn_r18_fpn_max-levels_glas-cpu.py, the GAN's with this pooling.
_base_ = ['./mask-rcnn_r18_fpn_glas-cpu.py', '../_base_/max_level_pooling.py']

model = dict(roi_head=_base_.max_level_roi_head)
