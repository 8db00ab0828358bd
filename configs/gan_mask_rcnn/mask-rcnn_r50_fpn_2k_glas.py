# Mask R-CNN R50-FPN on GlaS (MICCAI 2015 gland segmentation): the baseline of thesis
# Tables 4.6 (box AP 56.9) and 4.7 (mask AP 58.9) on the test set (testA + testB,
# section 4.5; GAN Mask R-CNN: 58.6 and 61.6, gan-mask-rcnn_r50_fpn_2k_glas.py).
# Thesis schedule: 2 GPUs x 4 images, 2k iterations, lr 0.01 -> 0.001 at 1.5k,
# shorter side sampled from [400, 522] for training, 522 for test, ImageNet R50.
# Data: data/glas_cc/ (COCO form, one class `gland`; how to get it: GlaSDataset).
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['gan_mask_rcnn'], allow_failed_imports=False)

max_iters = 2000
lr_steps = [1500]
num_classes = 1
dataset_type = 'GlaSDataset'
data_root = 'data/glas_cc/'

model = dict(
    roi_head=dict(
        bbox_head=dict(num_classes=num_classes),
        mask_head=dict(num_classes=num_classes)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomResize', scale=[(1333, 400), (1333, 522)], keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(1333, 522), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=4,
    sampler=dict(type='InfiniteSampler', shuffle=True),
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

optim_wrapper = dict(optimizer=dict(lr=0.01))
param_scheduler = [
    dict(type='LinearLR', start_factor=1.0 / 3, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=lr_steps, gamma=0.1),
]
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=500)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=500, max_keep_ckpts=2))
# --resume of a checkpoint that the other model kind saved stops, naming load_from
custom_hooks = [dict(type='ResumeCheckHook')]
log_processor = dict(by_epoch=False)
# lr 0.01 is for 2 GPUs x 4 images; `--auto-scale-lr` rescales it for other set-ups.
auto_scale_lr = dict(enable=False, base_batch_size=8)
