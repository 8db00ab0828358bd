"""tools/demo.py never shows a stale table: runs and data of other arguments stop it.

A finished demo is faked on disk (checkpoints and the test metrics `mim test` logs),
so that a demo that would reuse it prints its table at once instead of training.
"""
import json
import os
import os.path as osp
import runpy
import subprocess
import sys

import pytest

from conftest import REPO
from gan_mask_rcnn_lab.synthetic_shapes import generate_splits

DEMO = osp.join(REPO, 'tools', 'demo.py')
SMALL = ['--iters', '1', '--size', '64', '--num-train', '2', '--num-val', '2']


def fake_finished_demo(work_dir, bbox_map):
    """The files a finished 1-iteration demo leaves: both final checkpoints and
    the metrics their `mim test` logged."""
    for name in ('baseline', 'gan'):
        os.makedirs(osp.join(work_dir, name, 'test', 'stamp'))
        open(osp.join(work_dir, name, 'iter_1.pth'), 'w').close()
        with open(osp.join(work_dir, name, 'test', 'stamp', 'stamp.json'), 'w') as f:
            f.write(json.dumps({'coco/bbox_mAP': bbox_map, 'step': 1}) + '\n')


def run_demo(*args):
    proc = subprocess.run([sys.executable, DEMO, *args], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, OMP_NUM_THREADS='1'))
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope='module')
def small_set(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('small_shapes'))
    generate_splits(root, num_train=2, num_val=2, size=64, seed=0)
    return root


def test_rerun_with_another_seed_stops_instead_of_printing_the_old_table(small_set,
                                                                          tmp_path):
    work = str(tmp_path / 'demo')
    os.makedirs(work)
    with open(osp.join(work, 'demo_args.json'), 'w') as f:  # the seed-0 demo's record
        json.dump(dict(iters=1, size=64, seed=0, num_train=2, num_val=2, data=small_set), f)
    fake_finished_demo(work, 0.123)
    code, out = run_demo(*SMALL, '--seed', '1', '--data', small_set, '--work-dir', work)
    assert code != 0
    assert '12.3' not in out, out  # the seed-0 runs' bbox AP
    assert f'{work} holds a demo run with --seed 0 (now 1)' in out, out


def test_runs_without_a_record_are_not_reused(small_set, tmp_path):
    work = str(tmp_path / 'demo')
    fake_finished_demo(work, 0.123)
    code, out = run_demo(*SMALL, '--data', small_set, '--work-dir', work)
    assert code != 0 and '12.3' not in out, out
    assert 'without a record of their arguments' in out, out


def test_data_of_another_size_is_not_reused(small_set, tmp_path):
    work = str(tmp_path / 'demo')
    fake_finished_demo(work, 0.123)
    code, out = run_demo('--iters', '1', '--size', '96', '--num-train', '2', '--num-val', '2',
                         '--data', small_set, '--work-dir', work)
    assert code != 0 and '12.3' not in out, out
    assert (f'{small_set} holds another shapes set (synthetic shapes, seed 0, size 64; '
            '2 train + 2 val images) than this demo asks for (synthetic shapes, seed 0, '
            'size 96; 2 train + 2 val images)') in out, out


def test_same_arguments_resume_the_same_runs(small_set, tmp_path, monkeypatch):
    demo = runpy.run_path(DEMO, run_name='demo')
    work = str(tmp_path / 'demo')
    monkeypatch.setattr(sys, 'argv', ['demo.py', *SMALL, '--data', small_set,
                                      '--work-dir', work])
    args = demo['parse_args']()
    demo['check_data'](args)
    demo['check_work_dir'](args)
    fake_finished_demo(work, 0.123)
    demo['check_work_dir'](args)  # the same arguments: its runs are this demo's
    with open(osp.join(work, 'demo_args.json')) as f:
        assert json.load(f) == dict(iters=1, size=64, seed=0, num_train=2, num_val=2,
                                    data=small_set)


def test_table_says_what_a_short_run_shows(capsys):
    demo = runpy.run_path(DEMO, run_name='demo')
    demo['print_table']({'baseline': {'bbox_mAP': 0.10}, 'gan': {'bbox_mAP': 0.117}}, 150)
    out = capsys.readouterr().out
    assert 'bbox_mAP' in out and '+1.7' in out
    assert ('150 iterations from scratch show that the pipeline runs, not the merit of '
            'the method') in out
