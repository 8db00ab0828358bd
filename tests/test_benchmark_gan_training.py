"""tools/benchmark_gan_training.py: the side-by-side protocol and one end-to-end run."""
import os
import re
import runpy
import subprocess
import sys

from conftest import REPO

bench = runpy.run_path(f'{REPO}/tools/benchmark_gan_training.py', run_name='bench')


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


def test_end_to_end_prints_the_three_ratios(tmp_path):
    """One measured iteration of the CPU configs on a generated 128 px set."""
    env = dict(os.environ, OMP_NUM_THREADS='1')
    out = subprocess.run(
        [sys.executable, f'{REPO}/tools/benchmark_gan_training.py', '--iters', '1',
         '--warmup', '0', '--size', '128'], capture_output=True, text=True, env=env,
        cwd=str(tmp_path), timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = re.findall(r'^\| (train time / iter|train peak memory|inference time / image)'
                      r' .*\| ([0-9.]+) \|$', out.stdout, flags=re.M)
    assert [r[0] for r in rows] == ['train time / iter', 'train peak memory',
                                    'inference time / image'], out.stdout
    assert all(0.3 < float(r[1]) < 5 for r in rows), rows
