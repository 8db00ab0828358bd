"""GANMaskRCNN.train_step: the warm-up step is mmdet's Mask R-CNN step, the
adversarial step updates both sides, the schedule comes from the MessageHub and
the model's arguments, non-finite losses and gradients are skipped (then stop)
without leaving NaN logs or the batch's BatchNorm statistics, bad arguments stop
at build; a NaN on one of two ranks is skipped on both (torchrun).

References: mmdet's plain Mask R-CNN train_step, hand-typed schedules, the
parameters and buffers before the step."""
import copy
import os.path as osp

import pytest
import torch
from conftest import torchrun_train
from gan_testing import (GAN_CFG, N, build, gan_tiny_cfg, params, plain_model_cfg,
                         set_iter)
from mmengine.logging import MessageHub
from mmengine.optim import DefaultOptimWrapperConstructor, build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

import gan_mask_rcnn.training_guards as guards
from mmdet.registry import MODELS


@pytest.fixture(scope='module')
def setup(shapes_root, tmp_path_factory):
    """The tiny GAN config and one training batch (no runner)."""
    init_default_scope('mmdet')
    cfg = gan_tiny_cfg(shapes_root, str(tmp_path_factory.mktemp('gan_unit')))
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
    return cfg, next(iter(loader))


def test_plain_optim_wrapper_is_rejected_with_a_hint(setup):
    cfg, batch = setup
    model = build(cfg)
    plain = DefaultOptimWrapperConstructor(dict(optimizer=dict(type='SGD', lr=0.01)))(model)
    with pytest.raises(TypeError, match="constructor='GANOptimWrapperConstructor'"):
        model.train_step(batch, plain)


def test_gan_model_without_discriminators_is_rejected(setup):
    cfg, _ = setup
    bad = dict(cfg.model, roi_head=plain_model_cfg(cfg.model).roi_head)
    with pytest.raises(TypeError, match="roi_head=dict\\(type='GANRoIHead'"):
        MODELS.build(bad)


@pytest.mark.parametrize('key, value, match', [
    ('d_steps', 0, 'd_steps must be an integer >= 1, got 0'),
    ('d_steps', 1.5, 'd_steps must be an integer >= 1, got 1.5'),
    ('adv_start_fraction', 1.5, r'adv_start_fraction is a fraction of max_iters in '
                                r'\[0, 1\], got 1.5'),
    ('adv_start_fraction', float('nan'), r'adv_start_fraction .* got nan'),
    ('adv_start_fraction', 500, r'adv_start_fraction .* got 500'),
    ('adv_ramp_fraction', -0.1, r'adv_ramp_fraction is a fraction of max_iters in '
                                r'\[0, 1\], got -0.1'),
    ('adv_ramp_fraction', True, r'adv_ramp_fraction .* got True'),
    ('max_consecutive_skips', -1, 'max_consecutive_skips must be an integer >= 0, got -1'),
])
def test_bad_schedule_arguments_stop_at_build(setup, key, value, match):
    with pytest.raises(ValueError, match=match):
        MODELS.build(dict(setup[0].model, **{key: value}))


def test_schedule_is_a_function_of_iteration_and_max_iters(setup):
    model = build(setup[0], adv_start_fraction=0.3, adv_ramp_fraction=0.4, d_steps=2)
    sched = [model.gan_schedule(i, 10) for i in range(10)]
    assert [a for a, _ in sched] == [False] * 3 + [True] * 7
    assert [s for _, s in sched] == [0, 0, 0, .25, .5, .75, 1, 1, 1, 1]
    # the same config at twice the length: start 6, ramp over 8
    sched = [model.gan_schedule(i, 20) for i in range(20)]
    assert [a for a, _ in sched] == [False] * 6 + [True] * 14
    assert [s for _, s in sched][5:15] == [0, .125, .25, .375, .5, .625, .75, .875, 1, 1]
    late = build(setup[0], adv_start_fraction=0.9)
    with pytest.raises(ValueError, match=r'adv_start_fraction=0.9 of max_iters=2 puts the '
                                         r'first adversarial iteration at 2 >= max_iters'):
        late.gan_schedule(0, 2)
    never = build(setup[0], adv_start_fraction=1.0)  # on purpose: the baseline's run
    assert [never.gan_schedule(i, 2) for i in (0, 1)] == [(False, 0.0)] * 2


def test_train_step_without_an_iteration_names_the_fix(setup):
    cfg, batch = setup
    model = build(cfg)
    ow = build_optim_wrapper(model, cfg.optim_wrapper)
    MessageHub.get_instance('b1_no_iteration')  # a fresh, current hub
    with pytest.raises(RuntimeError, match=r"update_info\('iter', i\)"):
        model.train_step(batch, ow)


def test_warmup_step_equals_plain_mask_rcnn_step(setup):
    """Before the adversarial start a GAN iteration is exactly mmdet's Mask R-CNN step."""
    cfg, batch = setup
    gan, plain = build(cfg, adv_start_fraction=0.5), build(cfg, plain=True)
    plain.load_state_dict(gan.state_dict(), strict=False)
    gan_ow = build_optim_wrapper(gan, cfg.optim_wrapper)
    plain_ow = build_optim_wrapper(plain, dict(cfg.optim_wrapper.generator))
    disc_before = params(gan.roi_head.box_discriminator)
    set_iter(0, max_iters=2)  # adversarial from iteration 1
    torch.manual_seed(1)
    gan_log = gan.train_step(copy.deepcopy(batch), gan_ow)
    torch.manual_seed(1)
    plain_log = plain.train_step(copy.deepcopy(batch), plain_ow)
    assert gan_log.keys() == plain_log.keys()
    for key in plain_log:
        assert torch.equal(gan_log[key], plain_log[key]), key
    ours = params(gan)
    for name, value in params(plain).items():
        assert torch.equal(ours[name], value), name
    for name, value in params(gan.roi_head.box_discriminator).items():
        assert torch.equal(value, disc_before[name]), name


def test_ramp_scale_reaches_the_generator_terms(setup):
    """At half the ramp the adversarial terms are exactly half those at full weight."""
    cfg, batch = setup
    logs = []
    for iteration in (0, 1):  # ramp over 2 iterations of 4: scales 0.5, 1.0
        model = build(cfg, adv_ramp_fraction=0.5)
        ow = build_optim_wrapper(model, cfg.optim_wrapper)
        set_iter(iteration, max_iters=4)
        torch.manual_seed(1)
        logs.append(model.train_step(copy.deepcopy(batch), ow))
    for key in ('loss_g_box', 'loss_g_mask'):
        assert logs[1][key] != 0 and torch.equal(2 * logs[0][key], logs[1][key]), key
    assert torch.equal(logs[0]['loss_mask'], logs[1]['loss_mask'])
    assert MessageHub.get_current_instance().get_scalar(
        'train/adv_weight_scale').data[0][-2:].tolist() == [0.5, 1.0]


def test_adversarial_step_updates_both_sides_without_leaks(setup):
    cfg, batch = setup
    model = build(cfg, d_steps=2)
    ow = build_optim_wrapper(model, cfg.optim_wrapper)
    discs = model.roi_head.discriminators()
    grads_at_d_step = []
    d_backward = ow['discriminator'].backward

    def spy(loss, **kwargs):  # D grads must be empty before the D backward
        grads_at_d_step.append([p.grad for d in discs for p in d.parameters()])
        d_backward(loss, **kwargs)

    ow['discriminator'].backward = spy
    before = params(model)
    set_iter(N - 1)  # full weights
    log = model.train_step(batch, ow)
    assert len(grads_at_d_step) == 2  # d_steps
    assert all(g is None for g in grads_at_d_step[0])  # the G step left no D gradient
    for key in ('loss_g_box', 'loss_g_mask', 'loss_d_box', 'loss_d_mask',
                'acc_d_box_real', 'acc_d_box_fake', 'dist_d_mask'):
        assert key in log and torch.isfinite(log[key]), key
    after = params(model)
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert any('box_discriminator' in n for n in changed)
    assert any('mask_discriminator' in n for n in changed)
    assert any(n.startswith('backbone') for n in changed)
    assert all(p.requires_grad for p in model.parameters())  # D unfrozen again


def test_non_finite_discriminator_loss_skips_the_d_update(setup, monkeypatch):
    cfg, batch = setup
    model = build(cfg)
    ow = build_optim_wrapper(model, cfg.optim_wrapper)
    real = model.roi_head.discriminator_loss

    def nan_loss(inputs):
        out = real(inputs)
        out['loss_d_box'] = out['loss_d_box'] * float('nan')
        return out

    monkeypatch.setattr(model.roi_head, 'discriminator_loss', nan_loss)
    before = params(model)
    set_iter(N - 1)
    with pytest.warns(UserWarning, match=r"non-finite discriminator loss or gradients "
                                         r"\['loss_d_box'\]"):
        log = model.train_step(batch, ow)
    assert all(torch.isfinite(v) for v in log.values())  # no NaN D logs
    assert 'loss_d_box' not in log
    after = params(model)
    for name in before:
        if 'discriminator' in name:  # D neither stepped nor left with gradients
            assert torch.equal(before[name], after[name]), name
            assert model.get_parameter(name).grad is None, name
        else:
            assert torch.isfinite(after[name]).all(), name
    assert any(not torch.equal(before[n], after[n]) for n in before
               if 'discriminator' not in n)  # the generator step did happen


@pytest.mark.parametrize('bad', [float('nan'), float('inf')], ids=['nan', 'inf'])
def test_non_finite_generator_loss_skips_the_iteration_then_stops(setup, monkeypatch, bad):
    """A NaN or inf in loss_mask: no weight moves (G nor D), a warning counts the
    skips, the third in a row stops naming loss_mask; a finite step resets the count."""
    cfg, batch = setup
    model = build(cfg, max_consecutive_skips=2)
    ow = build_optim_wrapper(model, cfg.optim_wrapper)
    real = model.roi_head.loss

    def bad_loss(*args, **kwargs):
        out = real(*args, **kwargs)
        out['loss_mask'] = out['loss_mask'] * bad
        return out

    monkeypatch.setattr(model.roi_head, 'loss', bad_loss)
    before = params(model)
    set_iter(N - 1)
    for n in (1, 2):
        with pytest.warns(UserWarning, match=rf"non-finite generator loss terms "
                                             rf"\['loss_mask'\].*\({n} in a row, {n} in all"):
            log = model.train_step(copy.deepcopy(batch), ow)
        assert set(log) == {'skipped_iters'} and log['skipped_iters'] == n  # not the NaN
    for name, value in params(model).items():
        assert torch.equal(value, before[name]), name
        assert model.get_parameter(name).grad is None, name
    with pytest.raises(RuntimeError, match=r"not finite in 3 iterations in a row "
                                           r"\(max_consecutive_skips=2\); non-finite "
                                           r"loss terms: \['loss_mask'\]"):
        model.train_step(copy.deepcopy(batch), ow)
    monkeypatch.undo()
    model.train_step(copy.deepcopy(batch), ow)  # finite again: the step runs
    after = params(model)
    assert all(torch.isfinite(v).all() for v in after.values())
    assert any(not torch.equal(after[n], before[n]) for n in before)
    monkeypatch.setattr(model.roi_head, 'loss', bad_loss)
    with pytest.warns(UserWarning, match=r'\(1 in a row, 4 in all'):
        model.train_step(copy.deepcopy(batch), ow)


def test_non_finite_loss_on_another_rank_skips_here_too(setup, monkeypatch):
    """The skip is decided over all ranks (min of the finite flags)."""
    cfg, batch = setup
    model = build(cfg)
    ow = build_optim_wrapper(model, cfg.optim_wrapper)
    ops = []

    def other_rank_not_finite(tensor, op):
        ops.append(op)
        tensor.zero_()  # the minimum over ranks: another rank had 0 (not finite)

    monkeypatch.setattr(guards, 'all_reduce', other_rank_not_finite)
    before = params(model)
    set_iter(N - 1)
    with pytest.warns(UserWarning, match=r"loss terms \['none on this rank"):
        model.train_step(copy.deepcopy(batch), ow)
    assert ops == ['min']
    for name, value in params(model).items():
        assert torch.equal(value, before[name]), name


def test_nan_on_one_of_two_ranks_skips_the_iteration_on_both(shapes_root, tiny_cfg_factory,
                                                             tmp_path):
    """``torchrun`` with 2 CPU ranks, NaN on rank 1 in iteration 0: both ranks skip
    it (a rank that stepped alone would wait for the other's gradients forever, or
    take its NaN), then train iteration 1 to identical, finite weights."""
    work_dir = str(tmp_path / 'work')
    cfg = tiny_cfg_factory(GAN_CFG, shapes_root, work_dir, max_iters=2)
    cfg.model.update(adv_start_fraction=0, adv_ramp_fraction=0)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    torchrun_train(cfg, 'nan_on_rank_hook', 'NaNOnRankOneHook', str(tmp_path / 'nan_rank1.py'))
    ranks = [torch.load(osp.join(work_dir, f'rank{r}.pth')) for r in range(2)]
    assert [r['skipped'] for r in ranks] == [1, 1]
    for r in ranks:
        for name, value in r['init'].items():
            assert torch.equal(r['first'][name], value), name  # iteration 0: no step
    for name, value in ranks[0]['final'].items():
        assert torch.isfinite(value).all(), name
        assert torch.equal(ranks[1]['final'][name], value), name
    assert any(not torch.equal(v, ranks[0]['init'][n]) for n, v in ranks[0]['final'].items())
