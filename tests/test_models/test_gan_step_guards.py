"""The GAN step's guards against a finite loss with non-finite gradients (e.g. from
the RoI-coordinate backward): neither the generator nor the discriminator steps on
them (``clip_grad`` cannot stop it: a NaN total norm gives a NaN clip coefficient),
a skipped iteration logs the skip rather than its NaN values, and the skipped batch's
BatchNorm statistics (``norm_eval=False``, as in the CPU configs) do not stay.

References: the parameters and buffers before the step."""
import copy

import pytest
import torch
from gan_testing import N, build, gan_tiny_cfg, params, set_iter
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.runner import Runner


@pytest.fixture(scope='module')
def setup(shapes_root, tmp_path_factory):
    init_default_scope('mmdet')
    cfg = gan_tiny_cfg(shapes_root, str(tmp_path_factory.mktemp('gan_guards')))
    assert cfg.model.backbone.norm_eval is False
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
    return cfg, next(iter(loader))


def buffers(module):
    return {k: v.detach().clone() for k, v in module.named_buffers()}


def nan_grad(param):
    """Make ``param``'s gradient NaN in every backward (the loss stays finite)."""
    return param.register_hook(lambda grad: grad * float('nan'))


def test_non_finite_generator_gradient_skips_the_iteration(setup):
    cfg, batch = setup
    model = build(cfg)
    ow = build_optim_wrapper(model, cfg.optim_wrapper)
    assert ow['generator'].clip_grad_kwargs  # clip_grad is on, and cannot stop it
    handle = nan_grad(model.roi_head.bbox_head.fc_reg.weight)
    before, stats = params(model), buffers(model)
    set_iter(N - 1)
    with pytest.warns(UserWarning, match=r'non-finite generator gradients \[.*\(1 in a row'):
        log = model.train_step(copy.deepcopy(batch), ow)
    assert set(log) == {'skipped_iters'} and log['skipped_iters'] == 1
    for name, value in params(model).items():  # neither G nor D stepped
        assert torch.equal(value, before[name]), name
        assert model.get_parameter(name).grad is None, name
    for name, value in buffers(model).items():  # BatchNorm statistics put back
        assert torch.equal(value, stats[name]), name
    handle.remove()
    log = model.train_step(copy.deepcopy(batch), ow)
    assert all(torch.isfinite(v) for v in log.values())
    moved = [n for n, v in buffers(model).items()
             if 'running_mean' in n and not torch.equal(v, stats[n])]
    assert any(n.startswith('backbone') for n in moved)  # a step does train them


def test_non_finite_discriminator_gradient_skips_the_d_update(setup):
    cfg, batch = setup
    model = build(cfg)
    ow = build_optim_wrapper(model, cfg.optim_wrapper)
    disc = model.roi_head.box_discriminator
    nan_grad(disc.fc.weight)
    d_before, g_before = params(disc), params(model.backbone)
    d_stats = {}  # before the discriminator step (the generator's forward trains them too)
    real = model.roi_head.discriminator_loss

    def snapshot_first(inputs):
        d_stats.update(d_stats or buffers(disc))
        return real(inputs)

    model.roi_head.discriminator_loss = snapshot_first
    set_iter(N - 1)
    with pytest.warns(UserWarning, match='non-finite discriminator loss or gradients'):
        log = model.train_step(copy.deepcopy(batch), ow)
    assert all(torch.isfinite(v).all() for v in log.values())
    for name, value in params(disc).items():
        assert torch.equal(value, d_before[name]), name
    for name, value in buffers(disc).items():
        if 'running' in name or 'num_batches' in name:
            assert torch.equal(value, d_stats[name]), name
    assert any(not torch.equal(v, g_before[n]) for n, v in params(model.backbone).items())


def test_non_finite_loss_puts_the_batch_norm_statistics_back(setup, monkeypatch):
    cfg, batch = setup
    model = build(cfg)
    ow = build_optim_wrapper(model, cfg.optim_wrapper)
    real = model.roi_head.loss

    def nan_loss(*args, **kwargs):
        out = real(*args, **kwargs)
        out['loss_mask'] = out['loss_mask'] * float('nan')
        return out

    monkeypatch.setattr(model.roi_head, 'loss', nan_loss)
    stats = buffers(model)
    set_iter(N - 1)
    with pytest.warns(UserWarning, match='non-finite generator loss'):
        model.train_step(copy.deepcopy(batch), ow)
    for name, value in buffers(model).items():
        assert torch.equal(value, stats[name]), name
