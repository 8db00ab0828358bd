"""tools/gpu_check: the plan, the step runner, the table and the carry check.

Fast and offline: no GPU, no carry folder, no training (the whole check runs on a
CPU with ``tools/gpu_check.sh run --device cpu``).
"""
import json
import math
import os
import os.path as osp
import sys
import tarfile
import time
import zipfile

import pytest

from conftest import REPO

sys.path.insert(0, osp.join(REPO, 'tools', 'gpu_check'))
import carry  # noqa: E402
import plan  # noqa: E402
import report  # noqa: E402
import run_check  # noqa: E402


@pytest.mark.parametrize('line, counts', [
    ('==== 3 passed, 1 failed, 2 skipped, 250 deselected in 4.21s ====',
     dict(passed=3, failed=1, skipped=2, deselected=250)),
    ('12 passed, 5 warnings in 1.00s', dict(passed=12)),
    ('1 error in 0.52s', dict(error=1)),
    ('==== 2 skipped, 3 deselected, 1 warning in 20.01s ====', dict(skipped=2, deselected=3)),
])
def test_pytest_summary_counts(line, counts):
    output = f'tests/test_x.py ..F\nsome 3 passed text without time\n{line}\n'
    assert report.parse_pytest_summary(output) == counts


def test_pytest_without_summary_is_empty_and_fails(tmp_path):
    step = plan.Step('cuda-tests', kind='pytest')
    assert report.parse_pytest_summary('ImportError: no module named mmcv\n') == {}
    result = run_check.read_result(step, 4, 'ImportError: no module named mmcv\n', 3.0)
    assert result.status == report.FAIL and 'no pytest summary' in result.numbers


def _probe(times, nonfinite=(), num_losses=10, **facts):
    return dict(iter_times=list(times), nonfinite=list(nonfinite), num_losses=num_losses,
                peak_memory_mib=facts.pop('peak', 1000.0), **facts)


def test_probe_summary_leaves_warmup_out_of_the_median():
    summary = report.summarize_probe(_probe([9.0, 5.0, 5.0, 5.0, 5.0, 0.2, 0.4, 0.3]))
    assert summary['s_per_iter'] == pytest.approx(0.3)
    assert summary['iters'] == 8 and summary['losses_finite']
    # fewer iterations than the warm-up: all of them count
    assert report.summarize_probe(_probe([2.0, 4.0]))['s_per_iter'] == pytest.approx(3.0)


def test_probe_summary_flags_nonfinite_and_missing_losses():
    nan = report.summarize_probe(_probe([1.0], nonfinite=[[3, 'loss_mask', math.nan]]))
    assert not nan['losses_finite']
    assert 'NON-FINITE' in report.train_numbers(nan)
    assert not report.summarize_probe(_probe([1.0], num_losses=0))['losses_finite']


def test_gan_baseline_ratio():
    base = report.StepResult('train-baseline-fp32', report.OK,
                             data=dict(s_per_iter=0.2, peak_memory_mib=1000.0))
    gan = report.StepResult('train-gan-fp32', report.OK,
                            data=dict(s_per_iter=0.25, peak_memory_mib=1100.0))
    row = report.ratio_result('fp32', base, gan)
    assert row.data == pytest.approx(dict(time_ratio=1.25, memory_ratio=1.1))
    assert row.numbers == 'time 1.25x, memory 1.10x'
    failed = report.StepResult('train-gan-fp32', report.FAIL)
    assert report.ratio_result('fp32', base, failed).status == report.SKIP


def test_table_and_json_stay_well_formed():
    rows = [report.StepResult('a', report.OK, 1.4, 'x | y'),
            report.StepResult('b', report.FAIL, 2.6, 'two\nlines', dict(v=math.nan))]
    lines = report.markdown_table(rows).splitlines()
    assert lines[2] == '| a | ok | 1 | x / y |' and lines[3] == '| b | FAIL | 3 | two lines |'
    doc = json.loads(report.to_json(rows, dict(device='cuda')))
    assert doc['device'] == 'cuda' and doc['steps'][1]['data'] == {'v': None}


def test_train_result_checks_the_expected_facts(tmp_path):
    probe = tmp_path / 'probe.json'
    probe.write_text(json.dumps(_probe([0.5] * 4, backend='gloo', world_size=1,
                                       model_wrapper='GradAllReduceDataParallel',
                                       start_iter=0, end_iter=4)))
    step = plan.Step('launch-nccl', kind='train', probe=str(probe),
                     expect=dict(backend='nccl', end_iter=4))
    result = run_check.read_result(step, 0, '', 10.0)
    assert result.status == report.FAIL and "got {'backend': 'gloo'}" in result.numbers
    step.expect = dict(backend='gloo', end_iter=4)
    assert run_check.read_result(step, 0, '', 10.0).status == report.OK
    missing = plan.Step('train-gan-fp32', kind='train', probe=str(tmp_path / 'none.json'))
    result = run_check.read_result(missing, 1, 'Traceback\nRuntimeError: CUDA error\n', 5.0)
    assert result.status == report.FAIL and 'CUDA error' in result.numbers


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f'/proc/{pid}/stat') as f:  # a zombie waits for its (dead) parent's reaper
        return f.read().split(')')[-1].split()[0] != 'Z'


def test_steps_record_failure_timeout_and_skip(tmp_path):
    pid_file = tmp_path / 'child.pid'
    steps = [plan.Step('fails', 'echo first; echo why it failed; exit 3'),
             plan.Step('hangs', f'sleep 60 & echo $! > {pid_file}; wait', cap=1),
             plan.Step('not-here', 'true', skip='needs CUDA')]
    out, logs = tmp_path / 'out', tmp_path / 'logs'
    out.mkdir(), logs.mkdir()
    deadline = time.monotonic() + 60
    fails, hangs, skipped = run_check.run_steps(steps, dict(os.environ), deadline, str(logs),
                                                str(out))
    assert (fails.status, fails.numbers) == (report.FAIL, 'rc 3: why it failed')
    assert hangs.status == report.TIMEOUT
    assert not _alive(int(pid_file.read_text()))  # its whole process group went
    assert (skipped.status, skipped.numbers) == (report.SKIP, 'needs CUDA')
    build_log = (out / 'build.log').read_text()
    assert '===== fails: FAIL' in build_log and 'why it failed' in build_log
    late = run_check.run_steps([plan.Step('late', 'true')], dict(os.environ),
                               time.monotonic() + 1, str(logs), str(out))
    assert late[0].status == report.SKIP and 'no time left' in late[0].numbers


def test_log_keeps_the_end_under_its_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(run_check, 'LOG_CAP', 1000)
    path = tmp_path / 'x.log'
    run_check.append_log(str(path), 'step', 'a' * 5000 + 'THE END')
    text = path.read_text()
    assert len(text) <= 1000 and text.rstrip().endswith('THE END')


def _names(steps, skipped):
    return [s.name for s in steps if bool(s.skip) == skipped]


def test_cuda_plan_builds_for_the_local_arch_and_launches_nccl():
    steps = plan.build_plan('cuda', 'python3', '/c', '/w', '9.0', iters=30)
    by_name = {s.name: s for s in steps}
    assert _names(steps, skipped=True) == []
    mmcv = by_name['build-mmcv']
    assert mmcv.env == dict(FORCE_CUDA='1', TORCH_CUDA_ARCH_LIST='9.0', MMCV_WITH_OPS='1',
                            MAX_JOBS='16')
    assert mmcv.with_next and by_name['build-project'].env['TORCH_CUDA_ARCH_LIST'] == '9.0'
    assert '--amp' in by_name['train-gan-amp'].cmd and 'gan_30.py' in by_name['train-gan-amp'].cmd
    launch = by_name['launch-nccl']
    assert '--nproc_per_node 1' in launch.cmd and '--launcher pytorch' in launch.cmd
    assert launch.expect['backend'] == 'nccl' and launch.expect['world_size'] == 1
    assert by_name['resume-gan'].expect == dict(start_iter=4, end_iter=8)


def test_cpu_plan_skips_what_needs_cuda_or_the_carry(tmp_path):
    steps = plan.build_plan('cpu', 'python', str(tmp_path / 'absent'), '/w', '', iters=2)
    assert _names(steps, skipped=True) == [
        'carry-check', 'install-wheels', 'build-mmcv', 'build-project', 'benchmark',
        'train-baseline-amp', 'train-gan-amp']
    launch = next(s for s in steps if s.name == 'launch-gloo')
    assert '--nproc_per_node 2' in launch.cmd and launch.expect['world_size'] == 2
    with pytest.raises(ValueError, match="device must be 'cuda' or 'cpu', got 'gpu'"):
        plan.build_plan('gpu', 'python', '/c', '/w', '', iters=2)


def _wheel(folder, name, version, requires):
    path = folder / f'{name}-{version}-py3-none-any.whl'
    with zipfile.ZipFile(path, 'w') as zf:
        zf.writestr(f'{name}-{version}.dist-info/METADATA', 'Metadata-Version: 2.1\n'
                    f'Name: {name}\n' + ''.join(f'Requires-Dist: {r}\n' for r in requires))
        # a vendored package's metadata must not count
        zf.writestr(f'{name}/_vendor/x-1.dist-info/METADATA', 'Requires-Dist: vendored\n')


def _sdist(folder, name, version, requires):
    src = folder / 'src' / f'{name}-{version}' / 'requirements'
    src.mkdir(parents=True)
    (src / 'runtime.txt').write_text('\n'.join(requires) + '\n')
    with tarfile.open(folder / f'{name}-{version}.tar.gz', 'w:gz') as tf:
        tf.add(folder / 'src' / f'{name}-{version}', arcname=f'{name}-{version}')


def test_carry_check_names_each_unmet_requirement(tmp_path):
    pytest.importorskip('packaging')
    _wheel(tmp_path, 'top', '1.0', ['low_dep>=2', 'opencv-python>=3', 'nose; extra == "test"',
                                    'old; python_version < "3.0"', 'there'])
    _wheel(tmp_path, 'low_dep', '1.5', [])
    _sdist(tmp_path, 'mmcv', '2.1.0', ['addict', 'yapf', '# a comment'])
    installed = {'opencv-python-headless': '4.10.0', 'there': '1', 'yapf': '0.43'}.get
    assert carry.check(str(tmp_path), installed) == [
        'low_dep>=2: found low_dep 1.5 (needed by top-1.0-py3-none-any.whl)',
        'addict: neither carried nor installed (needed by mmcv-2.1.0.tar.gz)']


def test_import_failures_name_the_missing_module(tmp_path, monkeypatch):
    (tmp_path / 'needs_absent.py').write_text('import absent_module_xyz\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    lines = carry.import_failures(['json', 'needs_absent'])
    assert len(lines) == 1 and "'absent_module_xyz' is missing" in lines[0]


def test_train_config_r50_random_init_adversarial_at_once(tmp_path):
    import train_config
    cfg = train_config.check_config('gan', str(tmp_path / 'shapes'), str(tmp_path / 'w'),
                                    iters=8, checkpoint_at=4)
    assert cfg.model.backbone.depth == 50 and cfg.model.backbone.init_cfg is None
    assert cfg.model.neck.in_channels == [256, 512, 1024, 2048]
    assert cfg.get('load_from') is None
    assert (cfg.train_cfg.max_iters, cfg.model.adv_start_fraction,
            cfg.model.adv_ramp_fraction) == (8, 0, 0)
    assert cfg.train_dataloader.dataset.data_root == str(tmp_path / 'shapes') + '/'
    assert cfg.val_cfg is None and cfg.val_dataloader is None and cfg.val_evaluator is None
    assert cfg.default_hooks.checkpoint.interval == 4
    assert cfg.custom_hooks == [dict(type='GpuCheckProbeHook')]
    assert 'gpu_check_probe' in cfg.custom_imports.imports
    base = train_config.check_config('baseline', 's', 'w', iters=30)
    assert base.default_hooks.checkpoint.interval > 30  # a timed run writes no checkpoint
    with pytest.raises(ValueError, match="got 'gan:x'"):
        train_config.parse_run('gan:x')


def test_main_runs_groups_and_writes_the_table(tmp_path, monkeypatch):
    steps = [plan.Step('first', 'sleep 0.2; echo A > a.txt', with_next=True),
             plan.Step('beside', 'echo B', log='tests.log'),
             plan.Step('broken', 'echo no luck; exit 1')]
    monkeypatch.setattr(run_check, 'build_plan', lambda *args: steps)
    monkeypatch.setattr(run_check, 'REPO', str(tmp_path))  # the steps' working dir
    out = tmp_path / 'out'
    run_check.main(['--device', 'cpu', '--out', str(out), '--work', str(tmp_path / 'w')])
    assert (tmp_path / 'a.txt').read_text() == 'A\n'
    table = (out / 'gpu_check.md').read_text()
    assert '| first | ok |' in table and '| beside | ok |' in table
    assert '| broken | FAIL |' in table and 'rc 1: no luck' in table
    doc = json.loads((out / 'gpu_check.json').read_text())
    assert [s['status'] for s in doc['steps']] == ['ok', 'ok', 'FAIL']
    assert sorted(os.listdir(out)) == ['build.log', 'gpu_check.json', 'gpu_check.md',
                                       'tests.log']
