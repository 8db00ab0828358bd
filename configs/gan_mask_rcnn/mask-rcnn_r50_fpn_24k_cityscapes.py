# Mask R-CNN R50-FPN on Cityscapes: the baseline of thesis Tables 4.3 (box AP 40.6)
# and 4.4 (mask AP 40.3) on the val set (section 4.3; GAN Mask R-CNN: 42.3 and 41.6,
# gan-mask-rcnn_r50_fpn_24k_cityscapes.py). The tables also list caravan and
# trailer, which the official evaluation (CityScapesMetric) ignores: it reports the
# 8 instance classes of mmdet's CityscapesDataset.
# Thesis schedule: 2 GPUs x 4 images, 24k iterations, lr 0.01 -> 0.001 at 18k,
# shorter side sampled from [800, 1024] for training, 1024 for test (both as in
# mmdet's cityscapes config), ImageNet R50 (mmdet starts from a COCO Mask R-CNN).
# Data: data/cityscapes/ (mmdet's layout; how to get it: how_to_get below).
_base_ = 'mmdet::cityscapes/mask-rcnn_r50_fpn_1x_cityscapes.py'
custom_imports = dict(imports=['gan_mask_rcnn'], allow_failed_imports=False)

max_iters = 24000
lr_steps = [18000]

model = dict(
    backbone=dict(init_cfg=dict(_delete_=True, type='Pretrained',
                                checkpoint='torchvision://resnet50')))
load_from = None
dataset_type = 'CheckedCityscapesDataset'  # stops at start on missing files, other classes
how_to_get = ('Register at https://www.cityscapes-dataset.com, download '
              'gtFine_trainvaltest.zip and leftImg8bit_trainvaltest.zip into '
              'data/cityscapes/, then write the COCO json with mmdet\'s converter: python '
              '<mmdet package>/.mim/tools/dataset_converters/cityscapes.py '
              'data/cityscapes --nproc 8 --out-dir data/cityscapes/annotations')
train_dataloader = dict(  # mmdet's RepeatDataset around the dataset
    batch_size=4, sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(dataset=dict(type=dataset_type, how_to_get=how_to_get)))
val_dataloader = dict(dataset=dict(type=dataset_type, how_to_get=how_to_get))
test_dataloader = val_dataloader
optim_wrapper = dict(optimizer=dict(lr=0.01))
param_scheduler = [
    dict(type='LinearLR', start_factor=1.0 / 3, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=lr_steps, gamma=0.1),
]
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=6000)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=6000, max_keep_ckpts=2))
# --resume of a checkpoint that the other model kind saved stops, naming load_from
custom_hooks = [dict(type='ResumeCheckHook')]
log_processor = dict(by_epoch=False)
# lr 0.01 is for 2 GPUs x 4 images; `--auto-scale-lr` rescales it for other set-ups.
auto_scale_lr = dict(enable=False, base_batch_size=8)
