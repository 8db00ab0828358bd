# Mask R-CNN baseline sized for a CPU on GlaS-cc (data/glas_cc/, 85 train / 80 test
# images, one class `gland`): R18-FPN from scratch, images resized to
# a shorter side of 256 px (the thesis uses [400, 522] with an ImageNet R50-FPN on a
# GPU: configs/gan_mask_rcnn/mask-rcnn_r50_fpn_2k_glas.py). Baseline for
# gan-mask-rcnn_r18_fpn_glas-cpu.py.
_base_ = './mask-rcnn_r18_fpn_shapes-cpu.py'

num_classes = 1
dataset_type = 'GlaSDataset'
data_root = 'data/glas_cc/'  # how to get it: GlaSDataset.HOW_TO_GET
# GlaS images are mostly 775x522: this keeps the aspect ratio at a 256 px shorter side.
image_scale = (400, 256)

model = dict(
    roi_head=dict(
        bbox_head=dict(num_classes=num_classes),
        mask_head=dict(num_classes=num_classes)),
    test_cfg=dict(rcnn=dict(max_per_img=100)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    dataset=dict(
        type=dataset_type, data_root=data_root, ann_file='annotations/train.json',
        data_prefix=dict(img='images/'), pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type, data_root=data_root, ann_file='annotations/test.json',
        data_prefix=dict(img='images/'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/test.json')
test_evaluator = val_evaluator
