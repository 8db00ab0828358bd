# Mask R-CNN baseline sized for a CPU: R18-FPN from scratch on the synthetic
# shapes set (`python tools/generate_shapes.py --out data/shapes`), 256 px images,
# 300 proposals, 128 sampled RoIs.
# Not a thesis setting: the baseline that the GAN variant
# (gan-mask-rcnn_r18_fpn_shapes-cpu.py) is compared against, same data and schedule.
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['gan_mask_rcnn'], allow_failed_imports=False)

num_classes = 4
image_size = 256
max_iters = 2000
dataset_type = 'ShapesDataset'
data_root = 'data/shapes/'

model = dict(
    backbone=dict(
        depth=18, frozen_stages=-1, norm_eval=False, init_cfg=None),
    neck=dict(in_channels=[64, 128, 256, 512]),
    roi_head=dict(
        bbox_head=dict(num_classes=num_classes),
        mask_head=dict(num_classes=num_classes)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=600, max_per_img=300),
        rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(
        rpn=dict(nms_pre=300, max_per_img=300),
        rcnn=dict(max_per_img=50)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(image_size, image_size), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(image_size, image_size), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type, data_root=data_root,
        ann_file='annotations/train.json', data_prefix=dict(img=''),
        filter_cfg=dict(filter_empty_gt=True, min_size=8),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(
        type=dataset_type, data_root=data_root,
        ann_file='annotations/val.json', data_prefix=dict(img=''),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
# COCO bbox and segm AP plus Boundary AP (dilation ratio 0.02), one evaluator.
val_evaluator = dict(
    type='CocoBoundaryMetric', ann_file=data_root + 'annotations/val.json',
    metric=['bbox', 'segm', 'boundary'])
test_evaluator = val_evaluator

train_cfg = dict(
    _delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
    val_interval=max_iters)
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4),
    clip_grad=dict(max_norm=10, norm_type=2))
# From scratch, lr 0.02 without warm-up diverged on CPU; 0.01 + 100-it warm-up is stable.
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[int(max_iters * 0.75)], gamma=0.1),
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=250,
                    max_keep_ckpts=2))
# --resume of a checkpoint that the other model kind saved stops, naming load_from
custom_hooks = [dict(type='ResumeCheckHook')]
log_processor = dict(by_epoch=False)
vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
visualizer = dict(type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
auto_scale_lr = dict(enable=False, base_batch_size=2)
