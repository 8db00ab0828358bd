"""tools/analysis_tools/benchmark_gan_training.py: the side-by-side protocol and one end-to-end run."""
import copy
import os
import re
import runpy
import subprocess
import sys

import torch

from conftest import REPO, tiny_cfg

bench = runpy.run_path(f'{REPO}/tools/analysis_tools/benchmark_gan_training.py', run_name='bench')


def test_steps_alternate_and_each_is_prepared_untimed():
    calls = []
    steps = {'a': lambda b: calls.append(('a', b)), 'b': lambda b: calls.append(('b', b))}
    prepare = {n: (lambda i, n=n: calls.append((f'prep_{n}', i))) for n in steps}
    times = bench['interleaved_times'](steps, [10, 11, 12], warmup=1, sync=lambda: None,
                                       prepare=prepare)
    assert calls == [('prep_a', 0), ('a', 10), ('prep_b', 0), ('b', 10),
                     ('prep_b', 1), ('b', 11), ('prep_a', 1), ('a', 11),
                     ('prep_a', 2), ('a', 12), ('prep_b', 2), ('b', 12)]
    assert [len(v) for v in times.values()] == [2, 2]  # warm-up batch not timed


def test_per_batch_ratio_pairs_the_same_batch():
    """Ratios of the same batch (not of two medians), quartiles as numpy's
    'weibull' percentiles (the exclusive method of ``statistics.quantiles``)."""
    import numpy as np
    gan, baseline = [2.0, 3.0, 4.0, 5.0, 9.0], [1.0, 1.0, 2.0, 2.0, 3.0]
    ratios = np.array(gan) / np.array(baseline)  # 2, 3, 2, 2.5, 3
    q1, q3 = np.percentile(ratios, [25, 75], method='weibull')
    assert bench['per_batch_ratio'](gan, baseline) == \
        f'{np.median(ratios):.3f} ({q1:.2f}-{q3:.2f})'
    # the ratio of the medians (4 / 2) differs: the medians come from other batches
    assert np.median(ratios) != np.median(gan) / np.median(baseline)
    assert bench['per_batch_ratio']([3.0], [2.0]) == '1.500'


def test_pair_starts_from_the_same_weights_and_times_an_adversarial_step(shapes_root,
                                                                        tmp_path):
    """The GAN model starts from the baseline's weights (only its discriminators are
    its own) and the step the benchmark times is adversarial at full weight."""
    from mmengine.logging import MessageHub
    cfgs = [tiny_cfg(c, shapes_root, str(tmp_path)) for c in bench['DEFAULT_CONFIGS']]
    models, weights = bench['build_pair'](cfgs, 'cpu')
    gan_weights = models['gan'][0].state_dict()
    disc = tuple(models['gan'][0].discriminator_names())
    assert {k for k in gan_weights if not k.startswith(disc)} == set(weights)
    assert all(torch.equal(gan_weights[k], v) for k, v in weights.items())
    batch = bench['load_batches'](cfgs[0], 'train', 1)[0]
    baseline_out = models['baseline'][0].train_step(copy.deepcopy(batch),
                                                    models['baseline'][1])
    gan_out = models['gan'][0].train_step(copy.deepcopy(batch), models['gan'][1])
    assert not any(k.startswith(('loss_d_', 'loss_g_')) for k in baseline_out)
    assert {'loss_d_box', 'loss_d_mask', 'loss_g_box', 'loss_g_mask'} <= set(gan_out)
    assert MessageHub.get_current_instance().get_scalar(
        'train/adv_weight_scale').current() == 1.0


def test_end_to_end_prints_ratios_of_its_medians(tmp_path):
    """One measured iteration of the CPU configs on a generated 128 px set: each
    ratio is the GAN median over the baseline median printed beside it, and with one
    iteration the per-batch ratio is that same ratio."""
    env = dict(os.environ, OMP_NUM_THREADS='1')
    out = subprocess.run(
        [sys.executable, f'{REPO}/tools/analysis_tools/benchmark_gan_training.py', '--iters', '1',
         '--warmup', '0', '--size', '128'], capture_output=True, text=True, env=env,
        cwd=str(tmp_path), timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = re.findall(r'^\| (train time / iter|train peak memory|inference time / image)'
                      r' \((s|MiB)\) \| ([0-9.]+)[^|]*\| ([0-9.]+)[^|]*\| ([0-9.]+) \|$',
                      out.stdout, flags=re.M)
    assert [r[0] for r in rows] == ['train time / iter', 'train peak memory',
                                    'inference time / image'], out.stdout
    for label, unit, base, gan, ratio in rows:
        half = 0.0005 if unit == 's' else 0.5  # half the last printed digit
        base, gan = float(base), float(gan)
        assert base > half and gan > half, (label, base, gan)
        assert (gan - half) / (base + half) - 0.0005 <= float(ratio) \
            <= (gan + half) / (base - half) + 0.0005, (label, base, gan, ratio)
    per_batch = dict(re.findall(r'^\| (train|inference) time, per-batch ratio \(median, '
                                r'quartiles\) \| +\| +\| ([0-9.]+) \|$', out.stdout, flags=re.M))
    assert per_batch == {'train': rows[0][4], 'inference': rows[2][4]}, out.stdout


def test_cfg_options_reach_both_configs_and_gan_options_the_gan_only(tmp_path):
    """R50 pairs are the R18 configs with --cfg-options (no R50 config of its own)."""
    configs = [os.path.join(REPO, 'configs', 'gan_cascade_rcnn', name) for name in (
        'cascade-mask-rcnn_r18_fpn_shapes-cpu.py', 'gan-cascade-mask-rcnn_r18_fpn_shapes-cpu.py')]
    r50 = {'model.backbone.depth': 50, 'model.neck.in_channels': [256, 512, 1024, 2048]}
    base, gan = bench['load_configs'](configs, {'model.d_steps': 2}, 64, str(tmp_path), r50)
    for cfg in (base, gan):
        assert cfg.model.backbone.depth == 50
        assert cfg.model.neck.in_channels == [256, 512, 1024, 2048]
    assert gan.model.d_steps == 2 and 'd_steps' not in base.model
