"""tools/analysis_tools/profile_gan_overhead.py: the difference table and one profiled run."""
import os
import re
import runpy
import subprocess
import sys

import pytest

from conftest import REPO

TOOL = f'{REPO}/tools/analysis_tools/profile_gan_overhead.py'
tool = runpy.run_path(TOOL, run_name='profile_gan_overhead')


def test_rows_are_per_iteration_means_largest_difference_first():
    baseline = [{'a': 10.0, 'b': 5.0}, {'a': 14.0, 'b': 5.0}]
    gan = [{'a': 12.0, 'b': 5.0, 'c': 8.0}, {'a': 16.0, 'b': 7.0, 'c': 6.0}]
    # means: baseline a 12, b 5 (17); GAN a 14, b 6, c 7 (27); difference 10
    assert tool['overhead_rows'](baseline, gan, top=2) == [
        ['c', '0.0', '7.0', '+7.0', '70%'],
        ['a', '12.0', '14.0', '+2.0', '20%'],
        ['other operators (1)', '5.0', '6.0', '+1.0', '10%'],
        ['total', '17.0', '27.0', '+10.0', '100%']]


def test_split_into_the_detectors_operators_and_the_gans_own():
    baseline = [{'conv [1]': 10.0, 'pool [2]': 0.0}, {'conv [1]': 20.0}]
    gan = [{'conv [1]': 12.0, 'conv [3]': 4.0, 'pool [2]': 2.0}, {'conv [1]': 22.0}]
    # 'pool [2]' took no time in the baseline: the GAN's, as is 'conv [3]'
    assert tool['shared_split'](baseline, gan) == dict(
        shared_baseline=15.0, shared_gan=17.0, gan_only=3.0)


def test_bad_iteration_counts_are_refused():
    with pytest.raises(ValueError, match='iters must be >= 1'):
        tool['run'](None, 0, 1, 'cpu', False)


def test_one_profiled_iteration_finds_the_gan_only_operators(tmp_path):
    """CPU configs on a generated 128 px set: the all-level PrRoIPool runs in the
    GAN model only, and the total's difference is that of its columns."""
    env = dict(os.environ, OMP_NUM_THREADS='1')
    out = subprocess.run([sys.executable, TOOL, '--iters', '1', '--warmup', '0',
                          '--size', '128', '--top', '40'], capture_output=True,
                         text=True, env=env, cwd=str(tmp_path), timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = dict((m[0], m[1:]) for m in re.findall(
        r'^\| (.+?) \| ([0-9.]+) \| ([0-9.]+) \| ([-+][0-9.]+) \| ', out.stdout, flags=re.M))
    pool = rows['gan_mask_rcnn::prroi_pool_max_levels']
    assert float(pool[0]) == 0 and float(pool[1]) > 0, out.stdout
    base, gan, diff = (float(v) for v in rows['total'])
    assert abs(gan - base - diff) < 0.2, out.stdout  # no timing assert: only sums
