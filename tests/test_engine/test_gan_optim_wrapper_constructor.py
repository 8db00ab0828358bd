"""GANOptimWrapperConstructor: the generator / discriminator parameter split, per-side
paramwise rules with the detector's names, shared keys, and bad configs.

References: the model's own parameter list and hand-typed learning rates."""
import copy

import pytest
from gan_testing import build, gan_tiny_cfg
from mmengine.optim import OptimWrapperDict, build_optim_wrapper
from mmengine.registry import init_default_scope


@pytest.fixture(scope='module')
def cfg(shapes_root, tmp_path_factory):
    init_default_scope('mmdet')
    return gan_tiny_cfg(shapes_root, str(tmp_path_factory.mktemp('gan_constructor')))


def test_constructor_splits_generator_and_discriminator(cfg):
    model = build(cfg)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    assert isinstance(wrapper, OptimWrapperDict)
    groups = {side: [p for g in wrapper[side].optimizer.param_groups for p in g['params']]
              for side in ('generator', 'discriminator')}
    disc = {id(p) for name, p in model.named_parameters() if 'discriminator' in name}
    assert {id(p) for p in groups['discriminator']} == disc
    assert {id(p) for p in groups['generator']} == \
        {id(p) for p in model.parameters()} - disc
    assert len(groups['generator']) + len(groups['discriminator']) == \
        len(list(model.parameters()))
    assert wrapper['generator'].optimizer.defaults['lr'] == 0.01
    assert wrapper['discriminator'].optimizer.defaults['lr'] == pytest.approx(0.01 / 5)


def test_constructor_paramwise_cfg_uses_detector_names(cfg):
    model = build(cfg)
    ow = copy.deepcopy(cfg.optim_wrapper)
    ow.generator.paramwise_cfg = dict(custom_keys={'backbone': dict(lr_mult=0.1)})
    ow.discriminator.paramwise_cfg = dict(
        custom_keys={'roi_head.mask_discriminator': dict(lr_mult=3.0)})
    wrapper = build_optim_wrapper(model, ow)
    names = {id(p): n for n, p in model.named_parameters()}
    for side, key, lr in (('generator', 'backbone.', 0.001), ('generator', 'neck.', 0.01),
                          ('discriminator', 'mask_discriminator', 0.006),
                          ('discriminator', 'box_discriminator', 0.002)):
        lrs = {g['lr'] for g in wrapper[side].optimizer.param_groups
               if key in names[id(g['params'][0])]}
        assert lrs and all(v == pytest.approx(lr) for v in lrs), (side, key, lrs)


def test_constructor_shared_wrapper_type_and_errors(cfg):
    model = build(cfg)
    ow = copy.deepcopy(cfg.optim_wrapper)
    ow.accumulative_counts = 2  # a shared key reaches both sides
    wrapper = build_optim_wrapper(model, ow)
    assert wrapper['generator']._accumulative_counts == 2
    assert wrapper['discriminator']._accumulative_counts == 2
    for missing in ('generator', 'discriminator'):
        bad = copy.deepcopy(cfg.optim_wrapper)
        bad.pop(missing)
        with pytest.raises(ValueError, match=f"missing \\['{missing}'\\].*constructor="):
            build_optim_wrapper(model, bad)
    bad = copy.deepcopy(cfg.optim_wrapper)
    bad.discriminator.type = 'AmpOptimWrapper'
    with pytest.raises(ValueError, match="conflicts with optim_wrapper.discriminator.type"):
        build_optim_wrapper(model, bad)
    bad = copy.deepcopy(cfg.optim_wrapper)
    bad.optimizer = dict(type='SGD', lr=0.1)
    with pytest.raises(ValueError, match='give each side its own optimizer'):
        build_optim_wrapper(model, bad)
    with pytest.raises(TypeError, match='discriminator_names'):
        build_optim_wrapper(build(cfg, plain=True), cfg.optim_wrapper)
