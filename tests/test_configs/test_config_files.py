"""Every config's data fit its model, which builds; thesis schedules are right.

The expected numbers are those of the thesis (section 4), typed in here by hand:
iterations, lr steps, base lr, images per GPU (2 GPUs), train and test scales
(shorter side), backbone depth and classes. Each GAN config must equal its
baseline except for the GAN parts.
"""
import glob
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

from gan_mask_rcnn.datasets import DataCheckMixin
from mmdet.registry import DATASETS, MODELS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CFG_DIR = osp.join(REPO, 'configs', 'gan_mask_rcnn')
MODEL_CONFIGS = sorted(glob.glob(osp.join(CFG_DIR, '*.py')))
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')

# name: (max_iters, lr steps, lr, images/GPU, train shorter sides, test side, depth, classes)
THESIS = {
    'mask-rcnn_r101_fpn_180k_coco': (180000, [120000, 160000], 0.01, 4, (800, 800), 800, 101,
                                     80),
    'mask-rcnn_r50_fpn_24k_cityscapes': (24000, [18000], 0.01, 4, (800, 1024), 1024, 50, 8),
    'mask-rcnn_r50_fpn_2k_glas': (2000, [1500], 0.01, 4, (400, 522), 522, 50, 1),
    'mask-rcnn_r101_fpn_27k_phone': (27000, [18000, 24000], 0.01, 8, (400, 600), 400, 101,
                                     11),
}
# Keys a GAN config may change relative to its baseline.
GAN_KEYS = {'model', 'optim_wrapper', 'model_wrapper_cfg', 'custom_imports',
            'gan_roi_head', 'gan_optim_wrapper'}


def _name(path):
    return osp.splitext(osp.basename(path))[0]


def _dataset(loader):
    ds = loader.dataset
    return ds.dataset if ds.type == 'RepeatDataset' else ds


def _short_sides(pipeline):
    """Range of the shorter image side that the Resize/RandomResize step produces."""
    for t in pipeline:
        if t['type'] == 'Resize':
            return min(t['scale']), min(t['scale'])
        if t['type'] == 'RandomResize':
            return min(t['scale'][0]), min(t['scale'][1])
    raise AssertionError(f'no Resize in {pipeline}')


def _classes(ds):
    return ds.get('metainfo', {}).get('classes') or DATASETS.get(ds.type).METAINFO['classes']


@pytest.mark.parametrize('path', MODEL_CONFIGS, ids=[_name(c) for c in MODEL_CONFIGS])
def test_config_data_fits_its_model(path):
    """Heads sized for the dataset's classes, evaluators reading the val set's file,
    datasets that check their data at start, resume of the other kind stopped."""
    cfg = Config.fromfile(path)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    sets = {key: _dataset(cfg[key]) for key in LOADERS}
    heads = cfg.model.roi_head
    for key, ds in sets.items():
        assert issubclass(DATASETS.get(ds.type), DataCheckMixin), (key, ds.type)
        assert len(_classes(ds)) == heads.bbox_head.num_classes == heads.mask_head.num_classes
    val = sets['val_dataloader']
    for key in ('val_evaluator', 'test_evaluator'):
        evaluators = cfg[key] if isinstance(cfg[key], list) else [cfg[key]]
        files = [e.ann_file for e in evaluators if 'ann_file' in e]
        assert files == [val.data_root + val.ann_file], (key, files)
    assert dict(type='ResumeCheckHook') in cfg.custom_hooks
    # mim train imports only what the config names: the types above need the package
    assert 'gan_mask_rcnn' in cfg.get('custom_imports', {}).get('imports', [])


@pytest.mark.parametrize('path', MODEL_CONFIGS, ids=[_name(c) for c in MODEL_CONFIGS])
def test_model_builds_for_its_classes(path):
    """The built heads' output layers match the dataset's classes; a GAN model is its
    baseline's Mask R-CNN, parameter for parameter, plus the two discriminators."""
    cfg = Config.fromfile(path)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model = MODELS.build(cfg.model)  # no weights are loaded before init_weights()
    num = len(_classes(_dataset(cfg.train_dataloader)))
    assert model.roi_head.bbox_head.fc_cls.out_features == num + 1  # + background
    assert model.roi_head.mask_head.conv_logits.out_channels == num
    if cfg.model.type != 'GANMaskRCNN':
        return
    assert cfg.model_wrapper_cfg.type == 'GradAllReduceDataParallel'
    disc = ('roi_head.box_discriminator.', 'roi_head.mask_discriminator.')
    assert model.discriminator_names() == [d[:-1] for d in disc]
    baseline = osp.join(CFG_DIR, _name(path).replace('gan-', '', 1) + '.py')
    plain = MODELS.build(Config.fromfile(baseline).model)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.startswith(disc)}
    assert ours == {k: tuple(v.shape) for k, v in plain.state_dict().items()}
    assert len(ours) < len(model.state_dict())


@pytest.mark.parametrize('name', sorted(THESIS))
def test_thesis_schedule(name):
    iters, steps, lr, per_gpu, train_sides, test_side, depth, classes = THESIS[name]
    for cfg_name in (name, 'gan-' + name):
        cfg = Config.fromfile(osp.join(CFG_DIR, cfg_name + '.py'))
        assert cfg.train_cfg.max_iters == iters
        multistep = [s for s in cfg.param_scheduler if s.type == 'MultiStepLR']
        assert len(multistep) == 1 and multistep[0].milestones == steps
        assert multistep[0].gamma == 0.1 and multistep[0].by_epoch is False
        optimizer = (cfg.optim_wrapper.generator.optimizer
                     if 'generator' in cfg.optim_wrapper else cfg.optim_wrapper.optimizer)
        assert optimizer.type == 'SGD' and optimizer.lr == lr
        assert cfg.train_dataloader.batch_size == per_gpu
        assert cfg.auto_scale_lr.base_batch_size == 2 * per_gpu
        assert _short_sides(_dataset(cfg.train_dataloader).pipeline) == train_sides
        assert _short_sides(_dataset(cfg.test_dataloader).pipeline) == (test_side, test_side)
        assert cfg.model.backbone.depth == depth
        assert cfg.model.backbone.init_cfg.checkpoint == f'torchvision://resnet{depth}'
        assert cfg.get('load_from') is None
        assert cfg.model.roi_head.bbox_head.num_classes == classes
        assert cfg.model.roi_head.mask_head.num_classes == classes


@pytest.mark.parametrize('name', sorted(THESIS))
def test_gan_config_is_baseline_plus_gan_parts(name):
    base = Config.fromfile(osp.join(CFG_DIR, name + '.py'))
    gan = Config.fromfile(osp.join(CFG_DIR, f'gan-{name}.py'))
    for key in set(base.keys()) | set(gan.keys()):
        if key not in GAN_KEYS:
            assert gan.get(key) == base.get(key), key
    assert gan.model.type == 'GANMaskRCNN' and gan.model.roi_head.type == 'GANRoIHead'
    for key in set(base.model.keys()) - {'type', 'roi_head'}:
        assert gan.model[key] == base.model[key], f'model.{key}'
    for key in set(base.model.roi_head.keys()) - {'type'}:
        assert gan.model.roi_head[key] == base.model.roi_head[key], f'model.roi_head.{key}'
    assert gan.optim_wrapper.constructor == 'GANOptimWrapperConstructor'
    assert gan.optim_wrapper.type == 'OptimWrapper'  # what mmdet's --amp expects
    assert gan.optim_wrapper.generator.optimizer == base.optim_wrapper.optimizer
    assert gan.optim_wrapper.discriminator.optimizer.lr == base.optim_wrapper.optimizer.lr / 5
    assert gan.train_cfg == base.train_cfg  # the model owns the GAN schedule, not the loop
