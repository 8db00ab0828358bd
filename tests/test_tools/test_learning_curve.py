"""The learning-curve tool's bookkeeping: which checkpoints pair up, the per-iteration
table against hand-computed means and differences, the figure, bad input."""
import runpy
import subprocess
import sys

import pytest

from conftest import REPO

TOOL = f'{REPO}/tools/analysis_tools/learning_curve.py'
curve = runpy.run_path(TOOL, run_name='learning_curve')


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b'')


def test_checkpoints_pair_across_models_seeds_and_keep_folder(tmp_path):
    for model in ('baseline', 'gan'):
        for seed in (0, 1):
            for k in (200, 300):  # the run folder keeps the last two
                touch(tmp_path / f'{model}_seed{seed}' / f'iter_{k}.pth')
            for k in (100, 200):  # older ones, hard-linked aside
                touch(tmp_path / 'keep' / f'{model}_seed{seed}' / f'iter_{k}.pth')
    touch(tmp_path / 'keep' / 'gan_seed0' / 'iter_50.pth')  # one model only
    touch(tmp_path / 'gan_seed1' / 'iter_300.pth.tmp')       # not a checkpoint
    pairs = curve['paired_checkpoints'](str(tmp_path), [0, 1])
    assert list(pairs) == [100, 200, 300]
    assert pairs[200]['gan'][1] == str(tmp_path / 'gan_seed1' / 'iter_200.pth')
    assert pairs[100]['baseline'][0] == str(
        tmp_path / 'keep' / 'baseline_seed0' / 'iter_100.pth')
    assert list(curve['paired_checkpoints'](str(tmp_path), [0, 1], [200, 250])) == [200]
    assert curve['paired_checkpoints'](str(tmp_path), [0, 7]) == {}  # seed 7 has none


def test_table_means_and_paired_differences(tmp_path):
    metrics = {
        100: {'baseline': {0: {'segm_mAP': 0.10}, 1: {'segm_mAP': 0.20}},
              'gan': {0: {'segm_mAP': 0.13}, 1: {'segm_mAP': 0.21}}},
        200: {'baseline': {0: {'segm_mAP': 0.30}, 1: {'segm_mAP': 0.30}},
              'gan': {0: {'segm_mAP': 0.28}, 1: {'segm_mAP': 0.30}}}}
    table = curve['curve_table'](metrics, [0, 1])
    # iteration 100: means 15 and 17, differences +3 and +1: mean +2, sample std sqrt(2)
    assert table[100]['segm_mAP']['baseline'][0] == pytest.approx(15.0)
    assert table[100]['segm_mAP']['gan'][0] == pytest.approx(17.0)
    assert table[100]['segm_mAP']['diff'] == pytest.approx([2.0, 2 ** 0.5])
    assert table[200]['segm_mAP']['diff'] == pytest.approx([-1.0, 2 ** 0.5])
    md = curve['to_markdown'](table, ['segm_mAP'], [0, 1])
    assert '| 100 | 15.0 -> 17.0 (+2.0 ± 1.4) |' in md
    assert '| 200 | 30.0 -> 29.0 (-1.0 ± 1.4) |' in md
    # --average-from 100: per run the mean of both iterations; seed 0: baseline 20,
    # GAN 20.5; seed 1: 25 and 25.5; both differences +0.5 (no spread, no t-test)
    window, average = curve['window_average'](metrics, [0, 1], 100)
    assert window == [100, 200]
    assert average['segm_mAP']['baseline'][0] == pytest.approx(22.5)
    assert average['segm_mAP']['gan'][0] == pytest.approx(23.0)
    assert average['segm_mAP']['diff'] == pytest.approx([0.5, 0.0])
    assert average['segm_mAP']['paired_t'] is None
    # from 200 alone: differences -2 and 0, t = -1 / (sqrt(2) / sqrt(2)) = -1, p = 0.5
    window, late = curve['window_average'](metrics, [0, 1], 200)
    assert window == [200]
    assert late['segm_mAP']['diff'] == pytest.approx([-1.0, 2 ** 0.5])
    assert late['segm_mAP']['paired_t'] == pytest.approx([-1.0, 0.5])
    md = curve['to_markdown'](table, ['segm_mAP'], [0, 1], late, 'mean of 200')
    assert md.rstrip().endswith('| mean of 200 | 30.0 -> 29.0 (-1.0 ± 1.4, p 0.50) |')
    with pytest.raises(ValueError, match='no evaluated iteration is >= 300'):
        curve['window_average'](metrics, [0, 1], 300)
    out = tmp_path / 'curve.png'
    curve['plot'](table, ['segm_mAP'], str(out), adv_start=150)
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_no_paired_checkpoint_stops_with_a_message(tmp_path):
    proc = subprocess.run([sys.executable, TOOL, str(tmp_path), '--seeds', '0'],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert 'no iteration has checkpoints of both models for seeds [0]' in proc.stderr


def test_checkpoints_without_their_run_config_stop_with_a_message(tmp_path):
    for model in ('baseline', 'gan'):
        touch(tmp_path / 'keep' / f'{model}_seed0' / 'iter_100.pth')
    proc = subprocess.run([sys.executable, TOOL, str(tmp_path), '--seeds', '0'],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert 'baseline_seed0/config.py is missing' in proc.stderr
