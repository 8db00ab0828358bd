"""The steps of the GPU check, their order, and the time they are expected to take.

Three modes:

* ``cuda``: a bare GPU machine. Install the carried wheels into ``<work>/site``, build
  the project's extension and mmcv with its CUDA ops for the local arch (at once;
  the op's own CUDA tests run as soon as the extension is built), check the
  imports, then the steps never run on a GPU yet (the model's CUDA tests, baseline
  and GAN trainings with ``--amp``, a resume, an NCCL launch), then the PrRoIPool
  benchmark and the timed GAN / baseline comparison, each alone on the machine.
* ``cpu`` with ``from_carry``: the rehearsal of the above on a CPU machine whose
  Python replicates the GPU machine's: the same install and builds (mmcv's CPU ops, the
  project's CUDA kernels compiled when ``cuda_arch`` is given), the CPU tests, the
  trainings for a few iterations, the resume and a two-process gloo launch.
* ``cpu``: the same tests and trainings in the current environment (no install).

A step runs once the steps it ``needs`` ended ``ok`` (or were left out in this mode);
after a failure they are skipped. An ``alone`` step waits for every earlier step
and runs with nothing beside it. Standard library only.
"""
import os.path as osp
import shlex
from dataclasses import dataclass, field
from typing import Dict, List, Optional

IMPORTS = ['mmengine', 'mmcv', 'mmcv.ops', 'mmdet', 'pycocotools', 'faster_coco_eval',
           'gan_mask_rcnn', 'gan_mask_rcnn.ops._C']
# the files with CUDA-marked tests; ops ones also run without mmdet (--noconftest)
OP_TESTS = ['tests/test_ops/test_prroi_pool.py', 'tests/test_ops/test_prroi_pool_autocast.py',
            'tests/test_ops/test_prroi_pool_bad_input.py',
            'tests/test_ops/test_prroi_pool_max_levels.py', 'tests/test_ops/test_roi_op_tester.py']
MODEL_TESTS = ['tests/test_engine/test_amp.py']
NOT_IN_MODE = 'not in this mode'  # prefix of the skip of a step this mode leaves out


@dataclass
class Step:
    """One step: a bash command run from the repository root.

    Args:
        name (str): Row name in the table.
        cmd (str): The command.
        cap (float): Most seconds it may take (also bounded by the check's budget).
        estimate (float): Seconds it is expected to take on the GPU machine.
        log (str): The ``$OUT`` log file its lines go to (prefixed with its name).
        skip (str): Why it does not run in this mode ('' when it runs).
        env (dict): Variables added to the check's environment.
        kind (str): How its result is read: ``plain`` (exit status), ``pytest``,
            ``bench`` (exit status, Markdown table kept), ``build`` (exit status,
            ptxas register counts kept) or ``train`` (probe).
        probe (str): ``train``: the ``probe.json`` the run writes.
        expect (dict): ``train``: facts the probe must show, e.g. ``{'backend': 'nccl'}``.
        needs (list[str]): Steps that must end ``ok`` before it starts.
        tools (list[str]): Programs it needs on ``PATH`` (skipped without them).
        alone (bool): Runs after every earlier step, with no other step beside it.
    """
    name: str
    cmd: str = ''
    cap: float = 60
    estimate: float = 10
    log: str = 'setup.log'
    skip: str = ''
    env: Dict[str, str] = field(default_factory=dict)
    kind: str = 'plain'
    probe: str = ''
    expect: Dict = field(default_factory=dict)
    needs: List[str] = field(default_factory=list)
    tools: List[str] = field(default_factory=list)
    alone: bool = False


def config_name(model: str, iters: int, checkpoint_at: int = 0) -> str:
    """File name ``train_config.py`` gives a run: ``gan_4_ckpt4.py``, ``baseline_30.py``."""
    return f'{model}_{iters}' + (f'_ckpt{checkpoint_at}' if checkpoint_at else '') + '.py'


def pytest_cmd(py: str, files: List[str], marks: str, extra: str = '') -> str:
    return (f'{py} -m pytest -q -p no:cacheprovider -m {shlex.quote(marks)}{extra} '
            + ' '.join(files))


def with_stub(stub: str, cmd: str) -> str:
    """``cmd`` with ``gan_mask_rcnn`` a stub package whose ``__path__`` is the real
    one: its ``ops`` import without mmdet (the package's ``__init__`` needs it)."""
    q = shlex.quote(stub)
    return (f'mkdir -p {q}/gan_mask_rcnn && printf "%s\\n" "import os" '
            '"__path__ = [os.path.join(os.getcwd(), \'projects\', \'gan_mask_rcnn\', '
            f'\'gan_mask_rcnn\')]" > {q}/gan_mask_rcnn/__init__.py && '
            f'PYTHONPATH={q}:$PYTHONPATH {cmd}')


def training_steps(device: str, python: str, work: str, iters: int) -> List[Step]:
    """Shapes and configs; the short trainings, the resume and the launch (side by
    side); the timed baseline and GAN runs (each alone, last)."""
    py, q = shlex.quote(python), shlex.quote
    cfgs, runs, shapes = osp.join(work, 'configs'), osp.join(work, 'runs'), osp.join(work, 'shapes')
    cuda = device == 'cuda'
    first, total = (4, 8) if cuda else (2, 3)   # resume: train `first`, resume to `total`
    procs = 1 if cuda else 2  # one CPU process cannot open MMEngine's process group
    size, num_train = (256, 64) if cuda else (128, 8)
    run_specs = [f'baseline:{iters}', f'gan:{iters}', f'baseline:{first}', f'gan:{first}',
                 f'gan:{first}:{first}', f'gan:{total}']
    steps = [Step('shapes+configs', log='train.log', cap=90, estimate=10, needs=['imports'],
                  cmd=(f'{py} tools/generate_shapes.py --out {q(shapes)} --num-train '
                       f'{num_train} --num-val 4 --size {size} && {py} '
                       f'tools/gpu_check/train_config.py --data-root {q(shapes)} --out-dir '
                       f'{q(cfgs)} --runs ' + ' '.join(run_specs)))]

    def train(cfg, work_dir, extra='', launcher=py):
        return (f'{launcher} tools/train.py {q(osp.join(cfgs, cfg))} '
                f'--work-dir {q(osp.join(runs, work_dir))}{extra}')

    def run(name, model, its, extra='', **kw):
        return Step(name, train(config_name(model, its), name, extra), log='train.log',
                    kind='train', probe=osp.join(runs, name, 'probe.json'),
                    needs=['shapes+configs'], **kw)

    for model in ('baseline', 'gan'):  # --amp: short, side by side
        steps.append(run(f'train-{model}-amp', model, first, ' --amp', cap=120, estimate=40,
                         skip='' if cuda else f'{NOT_IN_MODE}: --amp needs CUDA'))
    steps.append(Step(
        'resume-gan', cap=150, estimate=50, log='train.log', kind='train',
        needs=['shapes+configs'], probe=osp.join(runs, 'resume', 'probe.json'),
        cmd=(train(config_name('gan', first, first), 'resume') + ' && ' +
             train(config_name('gan', total), 'resume', ' --resume')),
        expect=dict(start_iter=first, end_iter=total)))
    backend = 'nccl' if cuda else 'gloo'
    steps.append(Step(
        f'launch-{backend}', cap=120, estimate=40, log='train.log', kind='train',
        needs=['shapes+configs'], probe=osp.join(runs, 'launch', 'probe.json'),
        cmd=train(config_name('gan', first), 'launch', ' --launcher pytorch', launcher=(
            f'{py} -m torch.distributed.run --standalone --nproc_per_node {procs}')),
        expect=dict(model_wrapper='GradAllReduceDataParallel', backend=backend,
                    world_size=procs, end_iter=first)))
    timed = [run(f'train-{model}-fp32', model, iters, cap=90, estimate=30, alone=True)
             for model in ('baseline', 'gan')]
    return steps, timed


def build_plan(device: str, python: str, carry: str, work: str, arch: str,
               iters: int, jobs: int = 16, from_carry: Optional[bool] = None,
               wheels: Optional[str] = None) -> List[Step]:
    """All steps of the check (see the module docstring).

    Args:
        device (str): ``'cuda'`` or ``'cpu'``.
        python (str): The interpreter the steps run.
        carry (str): The carry folder (wheels and the mmcv sdist).
        work (str): A scratch folder: site-packages, wheels, shapes, configs, runs.
        arch (str): ``TORCH_CUDA_ARCH_LIST`` of the builds, e.g. ``'9.0'``; on a CPU,
            '' builds the extension without its CUDA kernels.
        iters (int): Iterations of each timed training.
        jobs (int): Parallel compile jobs of the mmcv build.
        from_carry (bool, optional): Install and build from ``carry``; defaults to
            True on CUDA, False on a CPU.
        wheels (str, optional): Where the mmcv wheel is built, and taken from when
            one is there already; defaults to ``<work>/wheels``.
    """
    if device not in ('cuda', 'cpu'):
        raise ValueError(f"device must be 'cuda' or 'cpu', got {device!r}")
    if iters < 1:
        raise ValueError(f'iters must be >= 1, got {iters}')
    cuda = device == 'cuda'
    from_carry = cuda if from_carry is None else from_carry
    py, q = shlex.quote(python), shlex.quote
    site, wheels = osp.join(work, 'site'), wheels or osp.join(work, 'wheels')
    current = '' if from_carry else f'{NOT_IN_MODE}: the current environment is used'
    pip = f'{py} -m pip --disable-pip-version-check'
    install = f'{pip} install --no-index --no-deps --no-compile --target {q(site)}'
    cuda_env = dict(FORCE_CUDA='1', TORCH_CUDA_ARCH_LIST=arch) if arch else {}
    nvcc = ['nvcc'] if arch else []
    stub = osp.join(work, 'stub')  # the package's ops without its mmdet half
    op_marks, model_marks = ('cuda', 'cuda') if cuda else ('not cuda', 'not cuda')
    steps = [
        Step('env', cap=60, estimate=5, cmd=(
            '{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader;'
            ' nvcc --version | tail -n 2; } 2>&1; nproc; '
            f'{py} -c "import sys, torch, numpy; print(\'python\', sys.version.split()[0], '
            "'torch', torch.__version__, 'cuda', torch.version.cuda, 'numpy', "
            "numpy.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() "
            "else 'no GPU')\"")),
        # mmcv's setup.py and mmengine import pkg_resources, which setuptools dropped
        # at 82: a carried setuptools 80.9 then joins the site folder
        Step('install-carry', cap=120, estimate=15, skip=current, cmd=(
            f'{install} {q(carry)}/*.whl && {{ {py} -c "import pkg_resources" 2>/dev/null '
            f'|| {install} {q(carry)}/setuptools-fallback/*.whl; }} && '
            f'{py} tools/gpu_check/carry.py --pip-check {q(carry)}')),
        Step('build-project', cap=300, estimate=60, log='build.log', kind='build',
             skip=current, tools=nvcc, env=dict(cuda_env, MAX_JOBS='4', GMR_PTXAS_VERBOSE='1'),
             cmd=f'{py} setup.py build_ext --inplace'),
        # on a CPU, mmcv's CPU ops only: its CUDA ops take an hour on few cores
        Step('build-mmcv', cap=480, estimate=270, log='build.log', skip=current,
             needs=['install-carry'], tools=(nvcc if cuda else []) + ['ninja'],
             env=dict(cuda_env if cuda else {}, MMCV_WITH_OPS='1', MAX_JOBS=str(jobs)), cmd=(
                 f'{{ ls {q(wheels)}/mmcv-*.whl 2>/dev/null || {pip} wheel --no-deps '
                 f'--no-build-isolation --no-index -w {q(wheels)} {q(carry)}/mmcv-*.tar.gz; }}'
                 f' && {install} {q(wheels)}/mmcv-*.whl')),
        # while mmcv builds: the op alone, imported through a stub package
        Step('op-tests', cap=180, estimate=60, log='tests.log', kind='pytest',
             needs=['build-project'], cmd=with_stub(stub, pytest_cmd(
                 py, OP_TESTS, op_marks, ' --noconftest -k "not mmcv"'))),
        Step('imports', cap=120, estimate=10, needs=['install-carry', 'build-mmcv',
                                                     'build-project'],
             cmd=f'{py} tools/gpu_check/carry.py --imports ' + ' '.join(IMPORTS)),
        Step('model-tests', cap=180, estimate=60, log='tests.log', kind='pytest',
             needs=['imports'],  # the model's tests and the op's against mmcv's, at once
             cmd=pytest_cmd(py, MODEL_TESTS + OP_TESTS, model_marks,
                            ' -k "mmcv or ' + ' or '.join(
                                osp.basename(f)[:-3] for f in MODEL_TESTS) + '"')),
    ]
    trainings, timed = training_steps(device, python, work, iters)
    bench = Step('benchmark', cap=120, estimate=45, log='bench.log', kind='bench',
                 alone=True, needs=['build-project'], cmd=with_stub(stub, (
                     f'{py} tools/analysis_tools/benchmark_prroi_pool.py --device {device}'
                     + ('' if cuda else ' --rois 64 --repeat 1'))))
    return steps + trainings + [bench] + timed


def may_start(step: Step, earlier_pending: List[Step], running: List[Step]) -> bool:
    """Whether ``step``, whose needs have ended, may start now: nothing starts beside
    an ``alone`` step or past one still waiting; an ``alone`` step waits for every
    earlier step and for the running ones."""
    if any(s.alone for s in running):
        return False
    if step.alone:
        return not earlier_pending and not running
    return not any(s.alone for s in earlier_pending)


def schedule(steps: List[Step]) -> Dict[str, tuple]:
    """(start, end) seconds of each step from the estimates, under the rules the
    check runs by (``needs``, ``may_start``), every step taken to end ok; steps
    skipped in this mode are left out."""
    times, pending, now = {}, [s for s in steps if not s.skip], 0.0
    while pending:
        running = [s for s in steps if s.name in times and times[s.name][1] > now]
        waiting = {p.name for p in pending}
        for i, step in enumerate(pending):
            ready = all(n not in waiting and times.get(n, (0, 0))[1] <= now
                        for n in step.needs)
            if ready and may_start(step, pending[:i], running):
                times[step.name] = (now, now + step.estimate)
                pending.pop(i)
                break
        else:
            ends = [t1 for _, t1 in times.values() if t1 > now]
            if not ends:  # the rest need a step that never runs
                break
            now = min(ends)
    return times


def estimate_seconds(steps: List[Step]) -> float:
    """Expected wall time of the check from ``schedule``."""
    return max((t1 for _, t1 in schedule(steps).values()), default=0.0)
