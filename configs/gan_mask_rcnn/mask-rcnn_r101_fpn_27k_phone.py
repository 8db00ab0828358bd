# Mask R-CNN R101-FPN on the phone recycling set (533 images of disassembled phones,
# 11 component classes): the baseline of thesis Tables 4.1 (box AP 54.9) and 4.2
# (mask AP 57.2) on its validation split (section 4.2; GAN Mask R-CNN: 58.4 and 59.2,
# gan-mask-rcnn_r101_fpn_27k_phone.py).
# Thesis schedule: 2 GPUs x 8 images, 27k iterations, lr 0.01, x0.1 at 18k and 24k,
# shorter side sampled from [400, 600] for training, 400 for test, ImageNet R101.
# The thesis' noise/blur/sharpness/lightness augmentation was applied offline to the
# training images (90/10 split, > 4000 training images), so it is not in the pipeline.
# Data: data/phone_recycling/{images/, annotations/train.json, annotations/val.json}
# in COCO form. The thesis does not name the 11 classes: replace `classes` below by
# the category names of your annotation files.
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r101_fpn_1x_coco.py'
custom_imports = dict(imports=['gan_mask_rcnn'], allow_failed_imports=False)

max_iters = 27000
lr_steps = [18000, 24000]
classes = tuple(f'component_{i}' for i in range(1, 12))
data_root = 'data/phone_recycling/'
dataset_type = 'CheckedCocoDataset'  # stops at start on missing files or other classes
how_to_get = ('The phone recycling set is not public: put your COCO-form data at '
              'data/phone_recycling/ (annotations/train.json, annotations/val.json, '
              'images/) and set `classes` in this config to their category names.')

model = dict(
    roi_head=dict(
        bbox_head=dict(num_classes=len(classes)),
        mask_head=dict(num_classes=len(classes))))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomResize', scale=[(1333, 400), (1333, 600)], keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(1333, 400), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=8,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type, how_to_get=how_to_get,
        data_root=data_root, metainfo=dict(classes=classes),
        ann_file='annotations/train.json', data_prefix=dict(img='images/'),
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type, how_to_get=how_to_get,
        data_root=data_root, metainfo=dict(classes=classes),
        ann_file='annotations/val.json', data_prefix=dict(img='images/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/val.json')
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(lr=0.01))
param_scheduler = [
    dict(type='LinearLR', start_factor=1.0 / 3, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=lr_steps, gamma=0.1),
]
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=3000)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=3000, max_keep_ckpts=2))
# --resume of a checkpoint that the other model kind saved stops, naming load_from
custom_hooks = [dict(type='ResumeCheckHook')]
log_processor = dict(by_epoch=False)
# lr 0.01 is for 2 GPUs x 8 images; `--auto-scale-lr` rescales it for other set-ups.
auto_scale_lr = dict(enable=False, base_batch_size=16)
