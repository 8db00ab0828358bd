"""Run the GPU check's steps within a time budget; print and write one table.

``tools/gpu_check.sh run`` calls this with the machine's ``python3``. Each step
(``plan.py``) runs in its own process group under the smaller of its cap and the
time left; a step that fails or runs out of time is recorded and the next one runs.
Output goes to ``$OUT`` (or ``--out``): ``gpu_check.md`` (the table, rewritten after
every step), ``gpu_check.json`` and five logs (``build``, ``tests``, ``bench``,
``train``, ``resume_launch``). Standard library only. Examples::

    OUT=/tmp/out python3 tools/gpu_check/run_check.py --carry gpu_carry
    .venv/bin/python tools/gpu_check/run_check.py --device cpu --iters 2
    python3 tools/gpu_check/run_check.py --dry-run
"""
import argparse
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from typing import Dict, List, Optional

from plan import Step, build_plan
from report import (FAIL, OK, SKIP, TIMEOUT, StepResult, markdown_lines, markdown_table,
                    parse_pytest_summary, pytest_numbers, ratio_result, summarize_probe,
                    to_json, train_numbers)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
LOG_CAP = 15 * 2**20  # bytes per $OUT log (the device tool brings back 16 MiB a file)
MIN_STEP_SECONDS = 5  # a step with less time left is skipped


def step_environment(site: str) -> Dict[str, str]:
    """The check's environment: carried packages, the project and the probe importable."""
    paths = [site, osp.join(REPO, 'projects', 'gan_mask_rcnn'),
             osp.join(REPO, 'tools', 'gpu_check')]
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    env['PYTHONPATH'] = os.pathsep.join(paths + [p for p in [os.environ.get('PYTHONPATH')] if p])
    return env


def cuda_arch(python: str) -> str:
    """``'9.0'`` from ``torch.cuda.get_device_capability()``, '' without a GPU or torch."""
    code = ('import torch; print("%d.%d" % torch.cuda.get_device_capability() '
            'if torch.cuda.is_available() else "")')
    try:
        out = subprocess.run([python, '-c', code], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return ''
    return out.stdout.strip() if out.returncode == 0 else ''


def append_log(path: str, title: str, text: str) -> None:
    """Append one step's output under a title, keeping the file under ``LOG_CAP``."""
    size = osp.getsize(path) if osp.exists(path) else 0
    room = max(0, LOG_CAP - size - 200)
    if len(text) > room:  # the end says why a step failed: keep it
        text = f'[... {len(text) - room} characters left out ...]\n' + text[-room:]
    with open(path, 'a', errors='replace') as f:
        f.write(f'\n===== {title} =====\n{text}\n')


def read_result(step: Step, rc: Optional[int], output: str, seconds: float) -> StepResult:
    """The table row of a step that ran (``rc`` None: stopped at its time limit)."""
    last = next((line.strip() for line in reversed(output.splitlines()) if line.strip()), '')
    if rc is None:
        return StepResult(step.name, TIMEOUT, seconds,
                          f'stopped after {seconds:.0f} s: {last}'[:200])
    status, numbers, data = (OK if rc == 0 else FAIL), last[:200], {}
    if step.kind == 'pytest':
        data = parse_pytest_summary(output)
        numbers = pytest_numbers(data) if data else f'no pytest summary: {last}'[:200]
        if data.get('failed') or data.get('error') or not data:
            status = FAIL
    elif step.kind == 'bench':
        data = {'table': markdown_lines(output)}
        numbers = f"table below ({len(data['table'].splitlines())} lines)" if rc == 0 else numbers
    elif step.kind == 'train':
        if not osp.exists(step.probe):
            return StepResult(step.name, FAIL, seconds, f'no probe.json (rc {rc}): {last}'[:200])
        with open(step.probe) as f:
            data = summarize_probe(json.load(f))
        numbers = train_numbers(data)
        wrong = {k: data.get(k) for k, v in step.expect.items() if data.get(k) != v}
        if wrong:
            numbers += f'; expected {step.expect}, got {wrong}'
        if wrong or not data['losses_finite']:
            status = FAIL
        for key in ('start_iter', 'end_iter', 'backend', 'model_wrapper'):
            if key in step.expect:
                numbers += f', {key} {data.get(key)}'
    if status == FAIL and rc not in (0, None):
        numbers = f'rc {rc}: {numbers}'
    return StepResult(step.name, status, seconds, numbers, data)


def stop(proc: subprocess.Popen) -> None:
    """End a step's whole process group: SIGTERM, then SIGKILL to what is left."""
    for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, 30)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass


def run_steps(steps: List[Step], env: Dict[str, str], deadline: float, logs: str,
              out: str) -> List[StepResult]:
    """Start ``steps`` together, wait for each until its cap or the deadline."""
    procs, results = [], {}
    for step in steps:
        left = deadline - time.monotonic()
        if step.skip or left < MIN_STEP_SECONDS:
            why = step.skip or 'no time left of the budget'
            results[step.name] = StepResult(step.name, SKIP, numbers=why)
            continue
        log_file = osp.join(logs, f'{step.name}.log')
        with open(log_file, 'w') as f:
            f.write(f'$ {step.cmd}\n')
            f.flush()
            proc = subprocess.Popen(['bash', '-c', step.cmd], cwd=REPO, stdout=f,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    env=dict(env, **step.env))
        procs.append((step, proc, log_file, time.monotonic(), min(step.cap, left)))
    ended = {}  # step name -> (exit status or None when stopped, seconds)
    while len(ended) < len(procs):
        for step, proc, _, start, limit in procs:
            if step.name in ended:
                continue
            if proc.poll() is not None:
                ended[step.name] = (proc.returncode, time.monotonic() - start)
            elif time.monotonic() > start + limit:
                stop(proc)
                ended[step.name] = (None, time.monotonic() - start)
        time.sleep(0.1)
    for step, _, log_file, _, _ in procs:
        rc, seconds = ended[step.name]
        with open(log_file, errors='replace') as f:
            output = f.read()
        result = read_result(step, rc, output, seconds)
        append_log(osp.join(out, step.log), f'{step.name}: {result.status}, {seconds:.0f} s',
                   output)
        if result.status != OK:
            print(f'--- {step.name}: {result.status}; last lines:\n' +
                  '\n'.join(output.splitlines()[-15:]), flush=True)
        results[step.name] = result
    return [results[s.name] for s in steps]


def write_report(results: List[StepResult], header: Dict, out: str) -> str:
    """Write ``gpu_check.md`` and ``gpu_check.json``; return the Markdown."""
    by_name = {r.name: r for r in results}
    rows = list(results)
    for precision in ('fp32', 'amp'):
        if f'train-gan-{precision}' in by_name:
            rows.append(ratio_result(precision, by_name.get(f'train-baseline-{precision}'),
                                     by_name.get(f'train-gan-{precision}')))
    facts = ', '.join(f'{k} {v}' for k, v in header.items())
    text = f'GPU check, {facts}\n\n' + markdown_table(rows)
    bench = by_name.get('benchmark')
    if bench is not None and bench.data.get('table'):
        text += '\n\nbenchmark (tools/analysis_tools/benchmark_prroi_pool.py --device cuda):\n\n' + \
            bench.data['table']
    with open(osp.join(out, 'gpu_check.md'), 'w') as f:
        f.write(text + '\n')
    with open(osp.join(out, 'gpu_check.json'), 'w') as f:
        f.write(to_json(rows, header))
    return text


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', choices=['cuda', 'cpu'], default='cuda')
    parser.add_argument('--carry', default=osp.join(REPO, 'gpu_carry'))
    parser.add_argument('--out', default=os.environ.get('OUT') or
                        osp.join(REPO, 'work_dirs', 'gpu_check'))
    parser.add_argument('--work', default=None, help='scratch folder (default: a new temp dir)')
    parser.add_argument('--iters', type=int, default=None,
                        help='iterations of each timed training (default 30 on CUDA, 2 on CPU)')
    parser.add_argument('--budget', type=float, default=540, help='seconds for all steps')
    parser.add_argument('--jobs', type=int, default=os.cpu_count() or 4,
                        help='parallel compile jobs of the mmcv build')
    parser.add_argument('--dry-run', action='store_true', help='print the steps only')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    start = time.monotonic()
    iters = args.iters or (30 if args.device == 'cuda' else 2)
    work = args.work or ('<scratch>' if args.dry_run else tempfile.mkdtemp(prefix='gpu_check_'))
    if args.device == 'cpu':
        arch = ''
    else:
        arch = '<torch.cuda.get_device_capability>' if args.dry_run else cuda_arch(sys.executable)
    steps = build_plan(args.device, sys.executable, osp.abspath(args.carry), work,
                       arch, iters, args.jobs)
    if args.dry_run:
        for step in steps:
            what = f'skip: {step.skip}' if step.skip else step.cmd
            together = ', with the next step' if step.with_next else ''
            print(f'[{step.name}] cap {step.cap:.0f} s{together} -> {step.log}: {what}')
        return
    if args.device == 'cuda' and not arch:
        sys.exit(f'{sys.executable} sees no CUDA GPU: run with --device cpu on a CPU machine')
    os.makedirs(args.out, exist_ok=True)
    logs = osp.join(work, 'logs')
    os.makedirs(logs, exist_ok=True)
    header = dict(date=datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
                  device=args.device, arch=arch or '-', iters=iters, budget_s=args.budget)
    env = step_environment(osp.join(work, 'site'))
    deadline = start + args.budget
    results, i = [], 0
    while i < len(steps):
        group = [steps[i]]
        while group[-1].with_next and i + len(group) < len(steps):
            group.append(steps[i + len(group)])
        results += run_steps(group, env, deadline, logs, args.out)
        write_report(results, header, args.out)
        i += len(group)
    header['total_s'] = round(time.monotonic() - start)
    print(write_report(results, header, args.out))
    print(f'written to {args.out}; scratch in {work}')


if __name__ == '__main__':
    main()
