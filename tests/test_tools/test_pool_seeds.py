"""Pooling the paired seeds of several run_experiment work dirs and saved tables:
statistics against hand-computed values, the config, argument, seed and kernel
checks, bad input."""
import json
import math
import runpy
import subprocess
import sys

import pytest

from conftest import REPO, fake_run

pool = runpy.run_path(f'{REPO}/tools/analysis_tools/pool_seeds.py', run_name='pool_seeds')


def fake_pair(work, seed, base, gan, lr=0.02):
    fake_run(work, seed, base, lr)
    fake_run(work, seed, gan, lr, model='gan')


def test_pools_seeds_of_two_dirs_against_hand_computed_values(tmp_path):
    a, b = tmp_path / 'a', tmp_path / 'a_longer_name'  # paths wrap differently
    fake_pair(a, 0, 0.20, 0.22)  # GAN - baseline: +2, -1, +5 AP
    fake_pair(a, 1, 0.30, 0.29)
    fake_pair(b, 7, 0.25, 0.30)
    fake_run(b, 8, 0.25)  # its GAN run never finished: not pooled
    runs, seeds, envs = pool['load_pooled']([str(a), str(b)])
    assert seeds == [0, 1, 7]
    row = pool['summarize'](runs, seeds)['segm_mAP']
    # mean 2, sample sd sqrt(((0)^2 + 3^2 + 3^2) / 2) = 3, t = 2 / (3 / sqrt(3))
    assert row['diff'][0] == pytest.approx(2.0)
    assert row['diff'][1] == pytest.approx(3.0)
    assert row['per_seed'] == {'0': pytest.approx(2), '1': pytest.approx(-1),
                               '7': pytest.approx(5)}
    assert row['paired_t'][0] == pytest.approx(2 / (3 / math.sqrt(3)))
    assert row['baseline'][0] == pytest.approx(25.0)


def test_refuses_a_seed_in_two_dirs(tmp_path):
    fake_pair(tmp_path / 'a', 0, 0.2, 0.2)
    fake_pair(tmp_path / 'b', 0, 0.2, 0.2)
    with pytest.raises(SystemExit, match='seed 0 is in .* pool each seed once'):
        pool['load_pooled']([str(tmp_path / 'a'), str(tmp_path / 'b')])


def test_refuses_another_config(tmp_path):
    fake_pair(tmp_path / 'a', 0, 0.2, 0.2)
    fake_pair(tmp_path / 'b', 1, 0.2, 0.2, lr=0.01)
    with pytest.raises(SystemExit, match=r'trained another config(.|\n)*lr'):
        pool['load_pooled']([str(tmp_path / 'a'), str(tmp_path / 'b')])


def test_refuses_a_dir_without_finished_pairs_and_other_splits(tmp_path):
    fake_pair(tmp_path / 'a', 0, 0.2, 0.2)
    fake_run(tmp_path / 'b', 1, 0.2, model='gan')
    with pytest.raises(SystemExit, match='no seed with both runs finished'):
        pool['load_pooled']([str(tmp_path / 'a'), str(tmp_path / 'b')])
    fake_pair(tmp_path / 'c', 2, 0.2, 0.2)
    (tmp_path / 'c' / 'train_split.json').write_text('{}')
    with pytest.raises(SystemExit, match=r'a/train_split.json and .*c/train_split.json '
                                         'differ: the runs were evaluated on other splits'):
        pool['load_pooled']([str(tmp_path / 'a'), str(tmp_path / 'c')])


def test_command_line_writes_pooled_table(tmp_path):
    fake_pair(tmp_path / 'a', 0, 0.20, 0.22)
    fake_pair(tmp_path / 'b', 1, 0.30, 0.29)
    out = tmp_path / 'out'
    subprocess.run([sys.executable, f'{REPO}/tools/analysis_tools/pool_seeds.py',
                    str(tmp_path / 'a'), str(tmp_path / 'b'), '--out', str(out)],
                   check=True, capture_output=True)
    assert '| segm_mAP | 25.0 ± 7.1 | 25.5 ± 4.9 | +0.5 ± 2.1 | +2.0, -1.0 |' in (
        out / 'pooled.md').read_text()
    assert json.loads((out / 'pooled.json').read_text())['seeds'] == [0, 1]


ARGS = dict(dataset='glas', iters=400, image_scale=[288, 192], val_fraction=0.0,
            options={}, gan_options={}, exact_resume=False, seeds=[9], models=['gan'])
AVX512 = dict(torch='2.13.0+cpu', cpu_capability='AVX512', ATEN_CPU_CAPABILITY=None,
              ONEDNN_MAX_CPU_ISA=None, MKL_ENABLE_INSTRUCTIONS=None, OMP_NUM_THREADS='1')
AVX2 = dict(AVX512, cpu_capability='AVX2', ATEN_CPU_CAPABILITY='avx2')


def saved_table(path, pairs, env=AVX512, **args):
    """A ``results.json`` as run_experiment.py writes it: ``pairs`` {seed: (base, gan)}."""
    runs = {m: {str(s): {'segm_mAP': p[i], 'bbox_mAP': 0.1} for s, p in pairs.items()}
            for i, m in enumerate(('baseline', 'gan'))}
    path.write_text(json.dumps(dict(
        args=dict(ARGS, **args), seeds_done=sorted(pairs), runs=runs, summary={},
        environments={f'{m}_seed{s}': [env] for s in pairs for m in ('baseline', 'gan')})))
    return str(path)


def test_pools_a_saved_table_with_a_work_dir(tmp_path):
    work = tmp_path / 'work'
    fake_pair(work, 0, 0.20, 0.22)
    saved_table(work / 'results.json', {0: (0.20, 0.22)})  # the dir's own table
    for m in ('baseline', 'gan'):
        (work / f'{m}_seed0' / 'environment.json').write_text(json.dumps([AVX512]))
    saved = saved_table(tmp_path / 'other_machine.json', {3: (0.30, 0.29), 4: (0.25, 0.30)})
    runs, seeds, envs = pool['load_pooled']([str(work), saved])
    assert seeds == [0, 3, 4]
    row = pool['summarize'](runs, seeds)['segm_mAP']
    # GAN - baseline +2, -1, +5 AP: mean 2, sample sd 3
    assert row['diff'] == [pytest.approx(2.0), pytest.approx(3.0)]
    assert len(envs) == 6 and all(e == [AVX512] for e in envs.values())


def test_refuses_saved_tables_of_another_experiment_or_kernels(tmp_path):
    a = saved_table(tmp_path / 'a.json', {0: (0.2, 0.2)})
    b = saved_table(tmp_path / 'b.json', {1: (0.2, 0.2)}, iters=1000)
    with pytest.raises(SystemExit, match='other experiments .*differ\\s+in iters'):
        pool['load_pooled']([a, b])
    c = saved_table(tmp_path / 'c.json', {1: (0.2, 0.3)}, env=AVX2)
    with pytest.raises(SystemExit, match='other kernel environments .*AVX512.*AVX2.*'
                                         '--mixed-kernels'):
        pool['load_pooled']([a, c])
    runs, seeds, envs = pool['load_pooled']([a, c], mixed_kernels=True)
    assert seeds == [0, 1]
    work = tmp_path / 'work'
    fake_pair(work, 2, 0.2, 0.2)  # no results.json: nothing to compare the table with
    with pytest.raises(SystemExit, match='work has no results.json'):
        pool['load_pooled']([a, str(work)])
    with pytest.raises(SystemExit, match='no such work dir or results.json: .*missing'):
        pool['load_pooled']([a, str(tmp_path / 'missing')])


def test_figure_shows_each_seeds_difference_and_the_interval(tmp_path):
    pairs = {0: (0.20, 0.22), 1: (0.30, 0.29), 4: (0.25, 0.30)}  # +2, -1, +5 AP
    for seed, (base, gan) in pairs.items():
        fake_pair(tmp_path, seed, base, gan)
    runs, seeds, _ = pool['load_pooled']([str(tmp_path)])
    fig = pool['plot_differences'](pool['summarize'](runs, seeds), seeds, target=1.0)
    ax = fig.axes[0]
    assert ax.get_title() == 'segm AP'
    dots = ax.collections[0].get_offsets()
    assert dots[:, 1].tolist() == pytest.approx(
        [100 * (gan - base) for base, gan in pairs.values()])
    assert [t.get_text() for t in ax.get_xticklabels()] == ['0', '1', '4', 'mean']
    # the interval's bar: mean 2 ± t(0.975, 2) * 3 / sqrt(3), t = 0.95 sqrt(2 / 0.0975)
    (bar,) = ax.collections[1].get_segments()
    half = 0.95 * (2 / (1 - 0.95 ** 2)) ** 0.5 * 3 / math.sqrt(3)
    assert sorted(bar[:, 1]) == pytest.approx([2 - half, 2 + half])
    assert any(line.get_ydata()[0] == 1.0 for line in ax.get_lines())  # the target line
    fig.savefig(tmp_path / 'pooled.png')
    assert (tmp_path / 'pooled.png').read_bytes()[:4] == b'\x89PNG'
