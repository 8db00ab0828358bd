"""Run the GPU check's steps within a time budget; print and write one table.

``tools/gpu_check.sh run`` calls this with the machine's ``python3``. The steps
(``plan.py``) run in their own process groups, each under the smaller of its cap and
the time left, as soon as what they need has ended ok; a step whose prerequisite
failed, or whose program (nvcc, ninja) is missing, is skipped with one line. Every
line a step prints goes at once, prefixed with its name, to its log in ``$OUT`` (or
``--out``); ``gpu_check.md`` (the table) and ``gpu_check.json`` are rewritten after
every step, and stdout gets one progress line per finished step, so a run stopped
at any point leaves what it did. Bad input (no carry, a carry for another Python,
no GPU with ``--device cuda``) stops within seconds with one line naming the fix.
Standard library only. Examples::

    OUT=/tmp/out python3 tools/gpu_check/run_check.py --carry gpu_carry
    python3 tools/gpu_check/run_check.py --dry-run
    .venv/bin/python tools/gpu_check/run_check.py --device cpu --iters 2
    replica/bin/python tools/gpu_check/run_check.py --device cpu --from-carry \
        --budget 3600 --wheel-cache ~/.cache/gan_mask_rcnn/rehearsal-wheels
"""
import argparse
import collections
import glob
import os
import os.path as osp
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from typing import Dict, List, Optional

from plan import NOT_IN_MODE, Step, build_plan, estimate_seconds, may_start
from report import (FAIL, OK, SKIP, TIMEOUT, StepResult, read_result, write_report)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
LOG_CAP = 15 * 2**20  # bytes per $OUT log; the rest of a step's lines are dropped
MIN_STEP_SECONDS = 5  # a step with less time left is skipped
TAIL_LINES, TAIL_BYTES = 200, 2**16  # a step's last lines, kept past the cap


def step_environment(site: str) -> Dict[str, str]:
    """The check's environment: carried packages, the project and the probe importable,
    and ``CUDA_HOME`` where the toolkit is found (see ``cuda_home``)."""
    paths = [site, osp.join(REPO, 'projects', 'gan_mask_rcnn'),
             osp.join(REPO, 'tools', 'gpu_check')]
    env = dict(os.environ, PYTHONUNBUFFERED='1', PIP_NO_INDEX='1')
    env['PYTHONPATH'] = os.pathsep.join(paths + [p for p in [os.environ.get('PYTHONPATH')] if p])
    home = cuda_home(env)
    if home:
        env['CUDA_HOME'] = home
    return env


def cuda_home(env: Dict[str, str], defaults=('/usr/local/cuda',)) -> str:
    """The CUDA toolkit the builds link against: ``CUDA_HOME`` or ``CUDA_PATH`` when
    set, else the first of nvcc's folder and ``defaults`` that holds ``bin/nvcc`` and
    a ``libcudart``; '' when none does. torch guesses the toolkit from nvcc's
    folder, which a wrapper script on ``PATH`` (e.g. ``/usr/local/bin/nvcc``) gets
    wrong: the link then fails on ``-lcudart``."""
    for key in ('CUDA_HOME', 'CUDA_PATH'):
        if env.get(key):
            return env[key]
    nvcc = shutil.which('nvcc', path=env.get('PATH'))
    candidates = ([osp.dirname(osp.dirname(osp.realpath(nvcc)))] if nvcc else []) + list(defaults)
    for home in candidates:
        libs = glob.glob(osp.join(home, 'lib64', 'libcudart.so*')) + glob.glob(
            osp.join(home, 'targets', '*', 'lib', 'libcudart.so*'))
        if osp.exists(osp.join(home, 'bin', 'nvcc')) and libs:
            return home
    return ''


def cuda_arch(python: str) -> str:
    """``'9.0'`` from ``torch.cuda.get_device_capability()``, '' without a GPU or torch."""
    code = ('import torch; print("%d.%d" % torch.cuda.get_device_capability() '
            'if torch.cuda.is_available() else "")')
    try:
        out = subprocess.run([python, '-c', code], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return ''
    return out.stdout.strip() if out.returncode == 0 else ''


def carry_problem(carry: str, python_tag: str) -> Optional[str]:
    """Why ``carry`` cannot serve this Python (``'cp312'``), or None when it can."""
    fix = 'run tools/gpu_check.sh prepare where a package index is reachable'
    name = osp.basename(osp.normpath(carry)) + '/'
    if not osp.isdir(carry):
        return f'no {name} at {carry}: {fix}, and bring the folder along'
    wheels = glob.glob(osp.join(carry, '*.whl'))
    if not wheels or not glob.glob(osp.join(carry, 'mmcv-*.tar.gz')):
        return f'{name} holds no wheels or no mmcv sdist: {fix}'
    tags = {osp.basename(w).split('-')[-3] for w in wheels}
    other = sorted(t for t in tags if t.startswith('cp') and t != python_tag)
    if other:
        return (f'{name} holds wheels for {", ".join(other)}, this Python is {python_tag}: '
                f'run GPU_PY_VERSION={python_tag[2]}.{python_tag[3:]} tools/gpu_check.sh prepare')
    return None


class Running:
    """A started step: its process group and the thread that copies its lines, with
    the step's name in front, to its ``$OUT`` log and, whole, to a scratch file."""

    def __init__(self, step: Step, env: Dict[str, str], limit: float, out: str, logs: str):
        self.step, self.limit, self.start = step, limit, time.monotonic()
        self.scratch = osp.join(logs, f'{step.name}.log')
        self.proc = subprocess.Popen(['bash', '-c', step.cmd], cwd=REPO, env=dict(env, **step.env),
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.thread = threading.Thread(target=self._copy, args=(osp.join(out, step.log),),
                                       daemon=True)
        self.thread.start()

    def _copy(self, log: str) -> None:
        prefix = f'[{self.step.name}] '.encode()
        dropped, tail = 0, collections.deque(maxlen=TAIL_LINES)
        with open(log, 'ab') as shared, open(self.scratch, 'wb') as whole:
            shared.write(prefix + f'$ {self.step.cmd}\n'.encode())
            shared.flush()
            for line in iter(self.proc.stdout.readline, b''):
                whole.write(line)
                if shared.tell() < LOG_CAP - TAIL_BYTES:
                    shared.write(prefix + line)
                    shared.flush()
                else:  # the end says why a step failed: keep it
                    dropped += 1
                    tail.append(line)
            if dropped:
                shared.write(prefix + f'[... {dropped - len(tail)} lines left out ...]\n'.encode())
                shared.writelines(prefix + line for line in tail)

    def stop(self) -> None:
        """End the whole process group: SIGTERM, then SIGKILL to what is left."""
        for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, 30)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass

    def result(self, rc: Optional[int]) -> StepResult:
        self.thread.join(timeout=10)
        with open(self.scratch, errors='replace') as f:
            output = f.read()
        return read_result(self.step, rc, output, time.monotonic() - self.start)


def blocked_by(step: Step, results: Dict[str, StepResult], left_out: set,
               missing_tools: Dict[str, List[str]]) -> str:
    """Why ``step`` cannot run: a needed step that did not end ok (one ``left_out`` of
    this mode does not count), or a missing program."""
    for name in step.needs:
        r = results.get(name)
        if r is not None and r.status != OK and name not in left_out:
            return f'needs {name} ({r.status})'
    missing = missing_tools.get(step.name)
    return f'needs {" and ".join(missing)} on PATH' if missing else ''


class Stopped(Exception):
    """SIGTERM or SIGINT reached the check."""


def _raise_stopped(signum, frame):
    raise Stopped(signal.Signals(signum).name)


def run_steps(steps: List[Step], env: Dict[str, str], deadline: float, logs: str, out: str,
              on_result=lambda result: None) -> List[StepResult]:
    """Run ``steps`` by the plan's rules until each ended, was skipped or ran out of time.
    SIGTERM or SIGINT ends the running steps' process groups and records them, and
    the steps not started, before the check exits."""
    results: Dict[str, StepResult] = {}
    pending, running = list(steps), []

    def finish(result):
        results[result.name] = result
        on_result(result)

    previous = {sig: signal.signal(sig, _raise_stopped)
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        _schedule(steps, env, deadline, logs, out, pending, running, results, finish,
                  left_out={s.name for s in steps if s.skip.startswith(NOT_IN_MODE)},
                  missing_tools={s.name: [t for t in s.tools if shutil.which(t) is None]
                                 for s in steps})
    except Stopped as why:
        for r in running:
            r.stop()
            result = r.result(None)
            result.numbers = f'the check was stopped ({why}): {result.numbers}'[:200]
            finish(result)
        for step in pending:
            finish(StepResult(step.name, SKIP, numbers=f'the check was stopped ({why})'))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return [results[s.name] for s in steps]


def _schedule(steps, env, deadline, logs, out, pending, running, results, finish, left_out,
              missing_tools) -> None:
    """``run_steps``' loop: end, skip and start steps until none is left (what each
    mode leaves out and which programs are missing are found once, before it)."""
    while pending or running:
        for r in list(running):
            rc = r.proc.poll()
            if rc is None and time.monotonic() > r.start + r.limit:
                r.stop()
                rc = None
            elif rc is None:
                continue
            running.remove(r)
            finish(r.result(rc))
        for step in list(pending):
            why = step.skip or blocked_by(step, results, left_out, missing_tools)
            left = deadline - time.monotonic()
            if not why and left < MIN_STEP_SECONDS:
                why = 'no time left of the budget'
            if why:
                pending.remove(step)
                finish(StepResult(step.name, SKIP, numbers=why))
        for i, step in enumerate(pending):
            if any(n not in results for n in step.needs):
                continue
            if may_start(step, pending[:i], [r.step for r in running]):
                limit = min(step.cap, deadline - time.monotonic())
                running.append(Running(step, env, limit, out, logs))
                pending.remove(step)
                break  # the rules change with every start
        else:
            time.sleep(0.1)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', choices=['cuda', 'cpu'], default='cuda')
    parser.add_argument('--from-carry', action='store_true',
                        help='on a CPU too, install and build from the carry (the rehearsal)')
    parser.add_argument('--carry', default=osp.join(REPO, 'gpu_carry'))
    parser.add_argument('--out', default=os.environ.get('OUT') or
                        osp.join(REPO, 'work_dirs', 'gpu_check'))
    parser.add_argument('--work', default=None, help='scratch folder (default: a new temp dir)')
    parser.add_argument('--wheel-cache', default=None,
                        help='where the mmcv wheel is built, and taken from if there '
                             '(default: in the scratch folder)')
    parser.add_argument('--cuda-arch', default=None,
                        help='TORCH_CUDA_ARCH_LIST of the builds (default: the GPU\'s; '
                             'on a CPU, give one to compile the CUDA kernels)')
    parser.add_argument('--iters', type=int, default=None,
                        help='iterations of each timed training (default 30 on CUDA, 2 on CPU)')
    parser.add_argument('--budget', type=float, default=540, help='seconds for all steps')
    parser.add_argument('--cap-scale', type=float, default=1.0,
                        help='multiply each step\'s cap (a machine slower than the GPU '
                             'machine, e.g. a rehearsal on few cores)')
    parser.add_argument('--jobs', type=int, default=os.cpu_count() or 4,
                        help='parallel compile jobs of the mmcv build')
    parser.add_argument('--dry-run', action='store_true', help='print the steps only')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    start = time.monotonic()
    cuda = args.device == 'cuda'
    from_carry = cuda or args.from_carry
    iters = args.iters or (30 if cuda else 2)
    work = args.work or ('<scratch>' if args.dry_run else tempfile.mkdtemp(prefix='gpu_check_'))
    if from_carry and not args.dry_run:
        tag = f'cp{sys.version_info[0]}{sys.version_info[1]}'
        problem = carry_problem(osp.abspath(args.carry), tag)
        if problem:
            sys.exit(f'[gpu-check] {problem}')
    if args.cuda_arch is not None or not cuda:
        arch = args.cuda_arch or ''
    else:
        arch = '<torch.cuda.get_device_capability>' if args.dry_run else cuda_arch(sys.executable)
        if not arch:
            sys.exit(f'[gpu-check] {sys.executable} sees no CUDA GPU: on a machine without '
                     'one, run with --device cpu')
    wheels = osp.abspath(args.wheel_cache) if args.wheel_cache else None
    steps = build_plan(args.device, sys.executable, osp.abspath(args.carry), work, arch, iters,
                       args.jobs, from_carry, wheels)
    for step in steps:
        step.cap *= args.cap_scale
    estimate = estimate_seconds(steps)
    if args.dry_run:
        for step in steps:
            what = f'skip: {step.skip}' if step.skip else step.cmd
            rules = ''.join([f', needs {"+".join(step.needs)}' if step.needs else '',
                             ', alone' if step.alone else ''])
            print(f'[{step.name}] ~{step.estimate:.0f} s, cap {step.cap:.0f} s{rules} '
                  f'-> {step.log}: {what}')
        print(f'estimate: {estimate:.0f} s on a GPU machine (budget {args.budget:.0f} s)')
        return
    os.makedirs(args.out, exist_ok=True)
    logs = osp.join(work, 'logs')
    os.makedirs(logs, exist_ok=True)
    header = dict(date=datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
                  device=args.device, arch=arch or '-', iters=iters, budget_s=args.budget,
                  mode='from carry' if from_carry else 'current environment')
    print(f'[gpu-check] {len(steps)} steps, estimate {estimate:.0f} s on a GPU machine, '
          f'budget {args.budget:.0f} s; logs and table in {args.out}', flush=True)
    done: List[StepResult] = []

    def progress(result: StepResult) -> None:
        done.append(result)
        print(f'[gpu-check {time.monotonic() - start:4.0f} s] {result.name}: {result.status}'
              f' ({result.seconds:.0f} s) {result.numbers}'[:300], flush=True)
        write_report(done, header, args.out)

    env = step_environment(osp.join(work, 'site'))
    results = run_steps(steps, env, start + args.budget, logs, args.out, progress)
    header['total_s'] = round(time.monotonic() - start)
    print(write_report(results, header, args.out))
    print(f'written to {args.out}; scratch in {work}')
    failed = [r.name for r in results if r.status in (FAIL, TIMEOUT)]
    if failed:
        sys.exit(f'[gpu-check] {len(failed)} steps did not end ok: {", ".join(failed)}')


if __name__ == '__main__':
    main()
