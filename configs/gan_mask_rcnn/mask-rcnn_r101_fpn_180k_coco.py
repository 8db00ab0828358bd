# Mask R-CNN R101-FPN on COCO 2017: the baseline of thesis Table 4.5 (section 4.4),
# mask AP 36.0 on val2017 (GAN Mask R-CNN: 36.8, gan-mask-rcnn_r101_fpn_180k_coco.py).
# Thesis schedule: 2 GPUs x 4 images, 180k iterations, lr 0.01, x0.1 at 120k and
# 160k, shorter side 800 for training and test, ImageNet R101 (torchvision), as in
# mmdet's mask-rcnn_r101_fpn_1x_coco.py. Warm-up: maskrcnn-benchmark's default.
#   mim train mmdet configs/gan_mask_rcnn/mask-rcnn_r101_fpn_180k_coco.py \
#       --launcher pytorch --gpus 2
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r101_fpn_1x_coco.py'
custom_imports = dict(imports=['gan_mask_rcnn'], allow_failed_imports=False)

max_iters = 180000
lr_steps = [120000, 160000]

# Data: data/coco/ (mmdet's layout; how to get it: how_to_get below).
dataset_type = 'CheckedCocoDataset'  # stops at start on missing files or other classes
how_to_get = ('Download COCO 2017 from https://cocodataset.org/#download: '
              'http://images.cocodataset.org/zips/train2017.zip, .../zips/val2017.zip and '
              'http://images.cocodataset.org/annotations/annotations_trainval2017.zip, '
              'unzipped into data/coco/ (annotations/, train2017/, val2017/).')
train_dataloader = dict(batch_size=4, sampler=dict(type='InfiniteSampler', shuffle=True),
                        dataset=dict(type=dataset_type, how_to_get=how_to_get))
val_dataloader = dict(dataset=dict(type=dataset_type, how_to_get=how_to_get))
test_dataloader = val_dataloader
optim_wrapper = dict(optimizer=dict(lr=0.01))
param_scheduler = [
    dict(type='LinearLR', start_factor=1.0 / 3, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=lr_steps, gamma=0.1),
]
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=20000)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=20000, max_keep_ckpts=3))
# --resume of a checkpoint that the other model kind saved stops, naming load_from
custom_hooks = [dict(type='ResumeCheckHook')]
log_processor = dict(by_epoch=False)
# lr 0.01 is for 2 GPUs x 4 images; `--auto-scale-lr` rescales it for other set-ups.
auto_scale_lr = dict(enable=False, base_batch_size=8)
