"""Seed statistics of an experiment: the paired t-test and the t interval against
their closed forms (Student t with 1 and 2 degrees of freedom)."""
import math

import pytest

from gan_mask_rcnn_lab.experiment_tables import metric_rows, summarize


def test_summary_is_paired_per_seed():
    runs = {'baseline': {0: {'segm_mAP': 0.10}, 1: {'segm_mAP': 0.20}, 2: {'segm_mAP': 0.30}},
            'gan': {0: {'segm_mAP': 0.12}, 1: {'segm_mAP': 0.25}, 2: {'segm_mAP': 0.29}}}
    row = summarize(runs, [0, 1, 2])['segm_mAP']
    assert row['baseline'] == pytest.approx([20.0, 10.0])          # mean, sample std in %
    assert row['gan'][0] == pytest.approx(22.0)
    # differences +2, +5, -1: mean 2, sample std 3
    assert row['diff'] == pytest.approx([2.0, 3.0])
    assert row['per_seed'] == {'0': 2.0, '1': 5.0, '2': -1.0}
    # paired t = mean / (std / sqrt(n)) = 2 / sqrt(3); with 2 degrees of freedom the
    # two-sided p has the closed form 1 - t / sqrt(t^2 + 2)
    t = 2 / 3 ** 0.5
    assert row['paired_t'] == pytest.approx([t, 1 - t / (t * t + 2) ** 0.5])
    # the 0.975 quantile with 2 degrees of freedom inverts F(t) = 1/2 + t / (2 sqrt(t^2 + 2)):
    # t = a sqrt(2 / (1 - a^2)), a = 2 * 0.975 - 1; interval mean ± t * 3 / sqrt(3)
    a = 0.95
    half = a * (2 / (1 - a * a)) ** 0.5 * 3 / 3 ** 0.5
    assert row['diff_ci95'] == pytest.approx([2 - half, 2 + half])


def test_one_seed_has_no_spread():
    """A sample standard deviation needs two seeds: none is reported for one
    (not 0.0, which would read as 'no spread')."""
    runs = {'baseline': {0: {'segm_mAP': 0.10}}, 'gan': {0: {'segm_mAP': 0.12}}}
    row = summarize(runs, [0])['segm_mAP']
    assert row['baseline'] == [pytest.approx(10.0), None]
    assert row['diff'] == [pytest.approx(2.0), None]
    assert row['per_seed'] == {'0': 2.0}
    assert row['diff_ci95'] is None
    assert row['paired_t'] is None


def test_equal_differences_have_no_t_test():
    """Differences equal but for float rounding have no spread: no t-test, not a
    t of -7e14 with p 0."""
    runs = {'baseline': {3: {'bbox_mAP_75': 0.173}, 4: {'bbox_mAP_75': 0.161}},
            'gan': {3: {'bbox_mAP_75': 0.161}, 4: {'bbox_mAP_75': 0.149}}}
    row = summarize(runs, [3, 4])['bbox_mAP_75']
    assert row['diff'] == [pytest.approx(-1.2), pytest.approx(0.0, abs=1e-9)]
    assert row['paired_t'] is None


def test_markdown_row_shows_sign_spread_and_test():
    runs = {'baseline': {0: {'segm_mAP': 0.10}, 1: {'segm_mAP': 0.20}},
            'gan': {0: {'segm_mAP': 0.13}, 1: {'segm_mAP': 0.19}}}
    row, = metric_rows(summarize(runs, [0, 1]))
    # differences +3, -1: mean +1.0, sample sd 2 * sqrt(2); t = 1 / (2 sqrt 2 / sqrt 2) = 0.5
    # with 1 degree of freedom (Cauchy), p = 1 - 2 atan(t) / pi and the 0.975 quantile
    # is tan(0.475 pi): interval +1 ± tan(0.475 pi) * 2
    p = 1 - 2 * math.atan(0.5) / math.pi
    half = math.tan(0.475 * math.pi) * 2
    assert row == (f'| segm_mAP | 15.0 ± 7.1 | 16.0 ± 4.2 | +1.0 ± {2 * 2 ** 0.5:.1f} | '
                   f'+3.0, -1.0 | {1 - half:+.2f} to {1 + half:+.2f} | +0.50 ({p:.2f}) |')
