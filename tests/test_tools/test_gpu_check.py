"""tools/gpu_check: the plan, the step runner, the table and the install checks.

Fast and offline: no GPU, no carry folder, no training (the whole check runs on a
CPU with ``tools/gpu_check.sh run --device cpu``, and from the carry in a replica of
the GPU image with ``tools/gpu_check.sh rehearse``).
"""
import json
import math
import os
import os.path as osp
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
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
    result = report.read_result(step, 4, 'ImportError: no module named mmcv\n', 3.0)
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
    result = report.read_result(step, 0, '', 10.0)
    assert result.status == report.FAIL and "got {'backend': 'gloo'}" in result.numbers
    step.expect = dict(backend='gloo', end_iter=4)
    assert report.read_result(step, 0, '', 10.0).status == report.OK
    missing = plan.Step('train-gan-fp32', kind='train', probe=str(tmp_path / 'none.json'))
    result = report.read_result(missing, 1, 'Traceback\nRuntimeError: CUDA error\n', 5.0)
    assert result.status == report.FAIL and 'CUDA error' in result.numbers


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f'/proc/{pid}/stat') as f:  # a zombie waits for its (dead) parent's reaper
        return f.read().split(')')[-1].split()[0] != 'Z'


def _run(steps, tmp_path, seconds=60, **kw):
    out, logs = tmp_path / 'out', tmp_path / 'logs'
    out.mkdir(exist_ok=True), logs.mkdir(exist_ok=True)
    return run_check.run_steps(steps, dict(os.environ), time.monotonic() + seconds, str(logs),
                               str(out), **kw), out


def test_steps_record_failure_timeout_and_skip(tmp_path):
    pid_file = tmp_path / 'child.pid'
    steps = [plan.Step('fails', 'echo first; echo why it failed; exit 3'),
             plan.Step('hangs', f'sleep 60 & echo $! > {pid_file}; wait', cap=1),
             plan.Step('not-here', 'true', skip='needs CUDA')]
    (fails, hangs, skipped), out = _run(steps, tmp_path)
    assert (fails.status, fails.numbers) == (report.FAIL, 'rc 3: why it failed')
    assert hangs.status == report.TIMEOUT
    assert not _alive(int(pid_file.read_text()))  # its whole process group went
    assert (skipped.status, skipped.numbers) == (report.SKIP, 'needs CUDA')
    log = (out / 'setup.log').read_text().splitlines()
    assert '[fails] why it failed' in log and log[0].startswith('[fails] $ echo first')
    late, _ = _run([plan.Step('late', 'true')], tmp_path, seconds=1)
    assert late[0].status == report.SKIP and 'no time left' in late[0].numbers


def test_a_failed_step_skips_what_needs_it_at_once(tmp_path):
    steps = [plan.Step('build', 'exit 1'),
             plan.Step('tests', 'sleep 30', needs=['build'], cap=30),
             plan.Step('after-tests', 'sleep 30', needs=['tests'], cap=30),
             plan.Step('free', 'echo free')]
    start = time.monotonic()
    (build, tests, after, free), _ = _run(steps, tmp_path)
    assert time.monotonic() - start < 10
    assert (tests.status, tests.numbers) == (report.SKIP, 'needs build (FAIL)')
    assert (after.status, after.numbers) == (report.SKIP, 'needs tests (skip)')
    assert free.status == report.OK


def test_a_step_left_out_in_this_mode_does_not_skip_what_needs_it(tmp_path):
    steps = [plan.Step('build', skip=f'{plan.NOT_IN_MODE}: the current environment is used'),
             plan.Step('tests', 'true', needs=['build'])]
    (_, tests), _ = _run(steps, tmp_path)
    assert tests.status == report.OK


def test_a_missing_program_skips_its_step_with_one_line(tmp_path):
    steps = [plan.Step('build-mmcv', 'true', tools=['no-such-nvcc-xyz', 'sh'])]
    (build,), _ = _run(steps, tmp_path)
    assert (build.status, build.numbers) == (report.SKIP, 'needs no-such-nvcc-xyz on PATH')


def test_a_running_step_lines_are_in_out_at_once_and_progress_is_printed(tmp_path):
    # the step reads its own line back from $OUT before it ends
    steps = [plan.Step('s', 'echo marker; sleep 1; grep -c "^\\[s\\] marker$" '
                       f'{tmp_path}/out/tests.log', log='tests.log')]
    seen = []
    (result,), out = _run(steps, tmp_path, on_result=seen.append)
    assert result.status == report.OK and result.numbers == '1'
    assert [r.name for r in seen] == ['s']


def test_steps_beside_each_other_and_alone(tmp_path):
    stamp = f'date +%s.%N >> {tmp_path}/'
    steps = [plan.Step('a', f'{stamp}a; sleep 1; {stamp}a'),
             plan.Step('b', f'{stamp}b; sleep 1; {stamp}b', log='other.log'),
             plan.Step('timed', f'{stamp}t; sleep 0.2; {stamp}t', alone=True),
             plan.Step('c', f'{stamp}c; {stamp}c')]
    results, _ = _run(steps, tmp_path)
    assert [r.status for r in results] == [report.OK] * 4
    span = {n: [float(x) for x in (tmp_path / n).read_text().split()] for n in 'abtc'}
    assert span['b'][0] < span['a'][1]                       # a and b overlap
    assert span['t'][0] >= max(span['a'][1], span['b'][1])   # alone: after both
    assert span['c'][0] >= span['t'][1]                      # and nothing beside it


def test_log_keeps_the_end_past_its_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(run_check, 'LOG_CAP', 3000)
    monkeypatch.setattr(run_check, 'TAIL_BYTES', 1000)
    monkeypatch.setattr(run_check, 'TAIL_LINES', 3)
    (result,), out = _run([plan.Step('s', 'seq 1 2000; echo THE END')], tmp_path)
    text = (out / 'setup.log').read_text()
    assert len(text) < 4000 and text.rstrip().endswith('[s] THE END')
    assert 'lines left out' in text


def test_sigterm_ends_the_steps_and_keeps_what_they_did(tmp_path):
    """The check killed from outside (a call's time limit) records the running step
    and leaves its lines and the table in $OUT."""
    script = tmp_path / 'check.py'
    script.write_text(
        'import sys\n'
        f'sys.path.insert(0, {osp.join(REPO, "tools", "gpu_check")!r})\n'
        'import plan, run_check\n'
        'steps = [plan.Step("long", "echo started; sleep 60"), plan.Step("later", "true",'
        ' needs=["long"])]\n'
        'run_check.build_plan = lambda *args: steps\n'
        f'run_check.main(["--device", "cpu", "--out", {str(tmp_path / "out")!r}])\n')
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    log = tmp_path / 'out' / 'setup.log'
    for _ in range(100):
        if log.exists() and 'started' in log.read_text():
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    table = (tmp_path / 'out' / 'gpu_check.md').read_text()
    assert '| long | TIMEOUT |' in table and 'the check was stopped (SIGTERM)' in table
    assert '| later | skip |' in table and '[long] started' in log.read_text()
    assert proc.returncode != 0


def test_cuda_home_is_the_toolkit_behind_an_nvcc_wrapper(tmp_path):
    wrappers, toolkit = tmp_path / 'bin', tmp_path / 'cuda-13.0'
    wrappers.mkdir()
    (wrappers / 'nvcc').write_text(f'#!/bin/sh\nexec {toolkit}/bin/nvcc "$@"\n')
    (wrappers / 'nvcc').chmod(0o755)
    (toolkit / 'bin').mkdir(parents=True)
    (toolkit / 'bin' / 'nvcc').write_text('')
    (toolkit / 'lib64').mkdir()
    (toolkit / 'lib64' / 'libcudart.so.13').write_text('')
    env = dict(PATH=str(wrappers))
    # nvcc's folder (tmp/bin/..) has no libcudart: the toolkit among the defaults
    assert run_check.cuda_home(env, defaults=(str(toolkit),)) == str(toolkit)
    assert run_check.cuda_home(env, defaults=()) == ''
    assert run_check.cuda_home(dict(env, CUDA_HOME='/opt/cuda')) == '/opt/cuda'


def _names(steps, skipped):
    return [s.name for s in steps if bool(s.skip) == skipped]


def test_cuda_plan_builds_for_the_local_arch_and_launches_nccl():
    steps = plan.build_plan('cuda', 'python3', '/c', '/w', '9.0', iters=30)
    by_name = {s.name: s for s in steps}
    assert _names(steps, skipped=True) == []
    mmcv = by_name['build-mmcv']
    assert mmcv.env == dict(FORCE_CUDA='1', TORCH_CUDA_ARCH_LIST='9.0', MMCV_WITH_OPS='1',
                            MAX_JOBS='16')
    assert mmcv.tools == ['nvcc', 'ninja'] and mmcv.needs == ['install-carry']
    project = by_name['build-project']
    assert project.env['TORCH_CUDA_ARCH_LIST'] == '9.0' and project.env['GMR_PTXAS_VERBOSE'] == '1'
    assert '--amp' in by_name['train-gan-amp'].cmd and 'gan_4.py' in by_name['train-gan-amp'].cmd
    assert 'gan_30.py' in by_name['train-gan-fp32'].cmd and by_name['train-gan-fp32'].alone
    launch = by_name['launch-nccl']
    assert '--nproc_per_node 1' in launch.cmd and '--launcher pytorch' in launch.cmd
    assert launch.expect['backend'] == 'nccl' and launch.expect['world_size'] == 1
    assert by_name['resume-gan'].expect == dict(start_iter=4, end_iter=8)
    assert '--noconftest' in by_name['op-tests'].cmd and by_name['op-tests'].needs == [
        'build-project']


def test_cuda_plan_order_estimate_and_out_files():
    steps = plan.build_plan('cuda', 'python3', '/c', '/w', '9.0', iters=30)
    times = plan.schedule(steps)
    assert set(times) == {s.name for s in steps}
    first_run = ['model-tests', 'train-baseline-amp', 'train-gan-amp', 'resume-gan',
                 'launch-nccl']
    builds_end = max(times['build-mmcv'][1], times['build-project'][1])
    assert all(times[n][0] >= builds_end for n in first_run)
    assert times['op-tests'][0] < times['build-mmcv'][1]  # the op's tests while mmcv builds
    timed = ['benchmark', 'train-baseline-fp32', 'train-gan-fp32']
    assert min(times[n][0] for n in timed) >= max(times[n][1] for n in first_run)
    for a in steps:  # steps side by side write to distinct logs ... or are prefixed
        for b in steps:
            if a.alone and a is not b:
                assert not (times[b.name][0] < times[a.name][1] and
                            times[a.name][0] < times[b.name][1])
    assert plan.estimate_seconds(steps) <= 480
    assert len({s.log for s in steps}) + 2 <= 8  # $OUT brings back 8 files


def test_cpu_plan_skips_what_needs_cuda_or_the_carry(tmp_path):
    steps = plan.build_plan('cpu', 'python', str(tmp_path / 'absent'), '/w', '', iters=2)
    assert _names(steps, skipped=True) == [
        'install-carry', 'build-project', 'build-mmcv', 'train-baseline-amp', 'train-gan-amp']
    assert all(s.skip.startswith(plan.NOT_IN_MODE) for s in steps if s.skip)
    launch = next(s for s in steps if s.name == 'launch-gloo')
    assert '--nproc_per_node 2' in launch.cmd and launch.expect['world_size'] == 2
    rehearsal = plan.build_plan('cpu', 'python', '/c', '/w', '', iters=2, from_carry=True,
                                wheels='/cache')
    by_name = {s.name: s for s in rehearsal}
    assert _names(rehearsal, skipped=True) == ['train-baseline-amp', 'train-gan-amp']
    assert 'FORCE_CUDA' not in by_name['build-mmcv'].env and by_name['build-mmcv'].tools == [
        'ninja']
    assert '-w /cache' in by_name['build-mmcv'].cmd
    with pytest.raises(ValueError, match="device must be 'cuda' or 'cpu', got 'gpu'"):
        plan.build_plan('gpu', 'python', '/c', '/w', '', iters=2)


def _fake_carry(folder, tag='cp312'):
    folder.mkdir()
    (folder / f'shapely-2.2.0-{tag}-{tag}-manylinux_2_17_x86_64.whl').write_bytes(b'')
    (folder / 'mmengine-0.10.7-py3-none-any.whl').write_bytes(b'')
    (folder / 'mmcv-2.1.0.tar.gz').write_bytes(b'')
    return folder


@pytest.mark.parametrize('case, message', [
    ('absent', 'no gpu_carry/ at'),
    ('empty', 'gpu_carry/ holds no wheels or no mmcv sdist: run tools/gpu_check.sh prepare'),
    ('cp27', 'holds wheels for cp27, this Python is cp312: run GPU_PY_VERSION=3.12 '
             'tools/gpu_check.sh prepare'),
])
def test_bad_carry_stops_within_seconds_naming_the_fix(tmp_path, case, message):
    carry_dir = tmp_path / 'gpu_carry'
    if case == 'empty':
        carry_dir.mkdir()
    elif case == 'cp27':
        _fake_carry(carry_dir, 'cp27')
    assert message in run_check.carry_problem(str(carry_dir), 'cp312')
    assert run_check.carry_problem(str(_fake_carry(tmp_path / 'ok')), 'cp312') is None
    start = time.monotonic()
    with pytest.raises(SystemExit, match=r'\[gpu-check\] .*' + re.escape(message.split(',')[0])):
        run_check.main(['--device', 'cpu', '--from-carry', '--carry', str(carry_dir),
                        '--out', str(tmp_path / 'out')])
    assert time.monotonic() - start < 5


def test_cuda_without_a_gpu_stops_naming_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(run_check, 'cuda_arch', lambda python: '')
    monkeypatch.setattr(run_check, 'carry_problem', lambda *a: None)
    with pytest.raises(SystemExit, match='sees no CUDA GPU: on a machine without one, run '
                                         'with --device cpu'):
        run_check.main(['--out', str(tmp_path / 'out')])


def test_dry_run_prints_the_steps_and_the_estimate(capsys):
    run_check.main(['--dry-run'])
    out = capsys.readouterr().out
    assert '[build-mmcv] ~270 s' in out and 'needs install-carry' in out
    estimate = float(out.split('estimate: ')[1].split()[0])
    assert estimate <= 480


def test_pip_check_keeps_broken_requirements_of_carried_packages():
    output = ('mmengine 0.10.7 requires opencv-python, which is not installed.\n'
              'mmdet 3.3.0 requires shapely, which is not installed.\n'
              'jax 0.11.2 requires ml-dtypes, which is not installed.\n'
              'mmcv 2.1.0 has requirement numpy<2, but you have numpy 2.5.2.\n')
    carried = {'mmengine', 'mmdet', 'mmcv'}
    lines = carry.broken_requirements(output, carried, {'opencv-python-headless'}.__contains__)
    assert lines == ['mmdet 3.3.0 requires shapely, which is not installed.',
                     'mmcv 2.1.0 has requirement numpy<2, but you have numpy 2.5.2.']
    assert len(carry.broken_requirements(output, carried, lambda name: False)) == 3


def test_carried_names(tmp_path):
    _fake_carry(tmp_path / 'c')
    assert carry.carried_names(str(tmp_path / 'c')) == {'shapely', 'mmengine', 'mmcv'}


def test_import_failures_name_the_missing_module(tmp_path, monkeypatch):
    (tmp_path / 'needs_absent.py').write_text('import absent_module_xyz\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    lines = carry.import_failures(['json', 'needs_absent'])
    assert len(lines) == 1 and "'absent_module_xyz' is missing" in lines[0]


PTXAS = """ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function '_ZN13gan_mask_rcnn36_GLOBAL__N__81c2f8b8_4_k_cu_c36bde20\
20coor_backward_kernelIffEEvPT_T0_' for 'sm_90'
ptxas info    : Function properties for _ZN13gan_mask_rcnn20coor_backward_kernelIffEEvPT_T0_
    24 bytes stack frame, 16 bytes spill stores, 8 bytes spill loads
ptxas info    : Used 255 registers, used 1 barriers, 412 bytes cmem[0]
ptxas info    : Compiling entry function '_Z3fooPf' for 'sm_90'
ptxas info    : Function properties for _Z3fooPf
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 8 registers
""".replace('\\\n', '')


def test_ptxas_registers_per_kernel(monkeypatch):
    monkeypatch.setattr(report, 'demangle', lambda names: names)
    rows = report.ptxas_registers(PTXAS)
    assert [(r['registers'], r['spill_stores'], r['spill_loads'], r['arch']) for r in rows] == [
        (255, 16, 8, 'sm_90'), (8, 0, 0, 'sm_90')]
    step = plan.Step('build-project', kind='build')
    result = report.read_result(step, 0, PTXAS, 50.0)
    assert result.numbers == '2 kernels, 1 spill (table below)'


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


def test_main_runs_the_steps_and_writes_the_table(tmp_path, monkeypatch, capsys):
    steps = [plan.Step('first', 'sleep 0.2; echo A > a.txt'),
             plan.Step('beside', 'echo B', log='tests.log'),
             plan.Step('broken', 'echo no luck; exit 1'),
             plan.Step('after-broken', 'true', needs=['broken'])]
    monkeypatch.setattr(run_check, 'build_plan', lambda *args: steps)
    monkeypatch.setattr(run_check, 'REPO', str(tmp_path))  # the steps' working dir
    out = tmp_path / 'out'
    with pytest.raises(SystemExit, match='1 steps did not end ok: broken'):
        run_check.main(['--device', 'cpu', '--out', str(out), '--work', str(tmp_path / 'w')])
    assert (tmp_path / 'a.txt').read_text() == 'A\n'
    table = (out / 'gpu_check.md').read_text()
    assert '| first | ok |' in table and '| beside | ok |' in table
    assert '| broken | FAIL |' in table and 'rc 1: no luck' in table
    assert '| after-broken | skip | 0 | needs broken (FAIL) |' in table
    doc = json.loads((out / 'gpu_check.json').read_text())
    assert [s['status'] for s in doc['steps']] == ['ok', 'ok', 'FAIL', 'skip']
    assert sorted(os.listdir(out)) == ['gpu_check.json', 'gpu_check.md', 'setup.log',
                                       'tests.log']
    progress = [line for line in capsys.readouterr().out.splitlines()
                if line.startswith('[gpu-check ') and '] ' in line and ': ' in line]
    assert len(progress) == 4
