"""The kernel environment a run trained in: recorded per process, one entry per
distinct environment, and told apart in the tables."""
import json
import os
import runpy
import subprocess
import sys

from conftest import REPO

from gan_mask_rcnn_lab.run_records import (comparable_config, config_difference,
                                           environment_label, environments_by_label)

exp = runpy.run_path(f'{REPO}/tools/run_experiment.py', run_name='experiment')


def record(run_dir, **env):
    """``record_environment`` in a fresh process started with ``env``."""
    out = subprocess.run(
        [sys.executable, '-c', 'import json, sys; from gan_mask_rcnn_lab.run_records import '
         'record_environment; print(json.dumps(record_environment(sys.argv[1])))',
         str(run_dir)], env=dict(os.environ, **env), check=True, capture_output=True,
        text=True)
    return json.loads(out.stdout.splitlines()[-1])


def test_records_each_distinct_environment_once(tmp_path):
    run = tmp_path / 'gan_seed0'
    first = record(run, ATEN_CPU_CAPABILITY='default', OMP_NUM_THREADS='1')
    assert len(first) == 1
    # ATen's name of its scalar (non-vectorised) kernels
    assert first[0]['cpu_capability'] == 'DEFAULT'
    assert first[0]['ATEN_CPU_CAPABILITY'] == 'default'
    assert first[0]['OMP_NUM_THREADS'] == '1'
    assert first[0]['torch'].startswith('2.')
    # a resume in the same environment adds nothing; one with 2 threads is another
    assert record(run, ATEN_CPU_CAPABILITY='default', OMP_NUM_THREADS='1') == first
    both = record(run, ATEN_CPU_CAPABILITY='default', OMP_NUM_THREADS='2')
    assert both[0] == first[0] and both[1]['OMP_NUM_THREADS'] == '2'
    assert json.loads((run / 'environment.json').read_text()) == both


def test_tables_name_the_environments():
    env = dict(torch='2.13.0+cpu', cpu_capability='AVX512', OMP_NUM_THREADS='1')
    held = dict(env, cpu_capability='AVX2', ATEN_CPU_CAPABILITY='avx2')
    assert environment_label(env) == 'torch 2.13.0+cpu, AVX512, OMP_NUM_THREADS=1'
    assert environment_label(held) == ('torch 2.13.0+cpu, AVX2, ATEN_CPU_CAPABILITY=avx2, '
                                       'OMP_NUM_THREADS=1')
    same = {'baseline_seed0': [env], 'gan_seed0': [env]}
    assert exp['environment_note'](same) == ('Kernel environment of every training: '
                                             'torch 2.13.0+cpu, AVX512, OMP_NUM_THREADS=1.')
    mixed = {'baseline_seed0': [env], 'gan_seed0': [env, held], 'gan_seed1': None}
    labels = environments_by_label(mixed)
    assert labels == {environment_label(env): ['baseline_seed0', 'gan_seed0'],
                      environment_label(held): ['gan_seed0'], 'unrecorded': ['gan_seed1']}
    note = exp['environment_note'](mixed)
    assert note.startswith('**The runs trained in different kernel environments**')
    assert 'unrecorded (gan_seed1)' in note


def test_configs_of_two_spellings_of_one_data_root_compare_equal(tmp_path):
    """``<checkout>/../data/...`` (older runs, other checkouts) and the normalised root
    are one dataset; another root, or a relative path, is still a difference."""
    def config(name, root):
        path = tmp_path / f'{name}.py'
        path.write_text(f'data_root = {root!r}\nann = {root + "a.json"!r}\n'
                        "prefix = dict(img='images/')\nrel = '../data/x/'\n")
        return comparable_config(str(path))

    old = config('old', '/home/user/repo/../data/glas_cc/')
    worktree = config('worktree', '/home/user/wt/./../data/glas_cc/')
    new = config('new', '/home/user/data/glas_cc/')
    assert old == worktree == new
    assert new['data_root'] == '/home/user/data/glas_cc/'
    assert new['rel'] == '../data/x/' and new['prefix'] == dict(img='images/')
    other = config('other', '/home/user/repo/../other/glas_cc/')
    assert 'data_root' in config_difference(old, other, 'old', 'other')
