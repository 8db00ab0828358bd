"""The rerun-spread tool: per-seed differences of two runs of one config against
hand-computed values, the config check, bad input."""
import json
import math
import runpy
import subprocess
import sys

import pytest

from conftest import REPO, fake_run

TOOL = f'{REPO}/tools/analysis_tools/rerun_spread.py'
spread = runpy.run_path(TOOL, run_name='rerun_spread')


def test_differences_against_hand_computed_values(tmp_path):
    a, b = tmp_path / 'a', tmp_path / 'a_much_longer_name'  # paths wrap differently
    for seed, (x, y) in enumerate([(0.20, 0.22), (0.30, 0.27)]):
        fake_run(a, seed, x)
        fake_run(b, seed, y)
    runs = spread['load_pairs']([str(a), str(b)], 'baseline', [0, 1])
    table = spread['spread_table'](runs, [0, 1])
    row = table['segm_mAP']
    # differences +2 and -3 AP: mean -0.5, sample std 2.5 * sqrt(2), mean |d| 2.5;
    # paired t = -0.5 / (2.5 * sqrt(2) / sqrt(2)) = -0.2 with one degree of freedom,
    # whose two-sided p is 1 - 2 atan(|t|) / pi (the Cauchy distribution)
    assert row['baseline'][0] == pytest.approx(25.0)
    assert row['gan'][0] == pytest.approx(24.5)
    assert row['diff'] == pytest.approx([-0.5, 2.5 * math.sqrt(2)])
    assert row['mean_abs'] == pytest.approx(2.5)
    assert row['paired_t'] == pytest.approx([-0.2, 1 - 2 * math.atan(0.2) / math.pi])
    assert table['bbox_mAP']['paired_t'] is None  # equal on both sides: no test
    md = spread['to_markdown'](table, ['native', 'AVX'], [0, 1])
    # 95% interval: -0.5 ± tan(0.475 pi) * 2.5 (the Cauchy 0.975 quantile, sd / sqrt 2)
    half = math.tan(0.475 * math.pi) * 2.5
    assert ('| segm_mAP | 25.0 ± 7.1 | 24.5 ± 3.5 | -0.5 ± 3.5 | +2.0, -3.0 | 2.5 | '
            f'{-0.5 - half:+.2f} to {-0.5 + half:+.2f} | -0.20 (0.87) |') in md
    assert '| metric | native | AVX | AVX - native |' in md


def test_other_configs_or_missing_runs_stop_with_a_message(tmp_path):
    a, b = tmp_path / 'a', tmp_path / 'b'
    fake_run(a, 0, 0.2)
    fake_run(b, 0, 0.2, lr=0.05)
    with pytest.raises(SystemExit, match=r'other configs(.|\n)*\+.*lr=0.05'):
        spread['load_pairs']([str(a), str(b)], 'baseline', [0])
    with pytest.raises(SystemExit, match='b/baseline_seed1 holds no finished run'):
        fake_run(a, 1, 0.2)
        spread['load_pairs']([str(a), str(b)], 'baseline', [1])
    (a / 'val_split.json').write_text('{"images": [1]}')
    with pytest.raises(SystemExit, match='evaluated on other splits'):
        spread['load_pairs']([str(a), str(b)], 'baseline', [0])


def test_command_writes_the_tables(tmp_path):
    a, b = tmp_path / 'a', tmp_path / 'b'
    for seed, (x, y) in enumerate([(0.20, 0.21), (0.30, 0.28), (0.25, 0.25)]):
        fake_run(a, seed, x, model='gan')
        fake_run(b, seed, y, model='gan')
    proc = subprocess.run([sys.executable, TOOL, str(a), str(b), '--seeds', '0', '1', '2',
                           '--model', 'gan', '--names', 'native', 'AVX'],
                          capture_output=True, text=True, check=True)
    assert '| +1.0, -2.0, +0.0 | 1.0 |' in proc.stdout
    saved = json.loads((b / 'rerun_spread.json').read_text())
    assert saved['summary']['segm_mAP']['per_seed'] == {'0': 1.0, '1': -2.0, '2': 0.0}
    assert (b / 'rerun_spread.md').read_text() in proc.stdout
