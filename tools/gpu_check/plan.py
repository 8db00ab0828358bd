"""The steps of the GPU check, in order, for a CUDA machine or for this CPU machine.

On CUDA (``device='cuda'``): install the carried wheels into ``<work>/site``, build
mmcv with its CUDA ops for the local arch and the project's extension (both at
once), check the imports, run the CUDA-marked tests and the PrRoIPool benchmark,
train the baseline and the GAN (R50-FPN, random init, generated shapes) in fp32 and
with ``--amp``, resume a GAN training, and launch one through ``torchrun`` (NCCL,
``GradAllReduceDataParallel``). On a CPU (``device='cpu'``) the same imports, tests,
trainings, resume and launch run in the current environment, for a few iterations,
the launch with two gloo processes; what needs CUDA or the carry is skipped.

Standard library only.
"""
import os.path as osp
import shlex
from dataclasses import dataclass, field
from typing import Dict, List

IMPORTS = ['mmengine', 'mmcv', 'mmcv.ops', 'mmdet', 'pycocotools', 'faster_coco_eval',
           'gan_mask_rcnn', 'gan_mask_rcnn.ops._C']


@dataclass
class Step:
    """One step: a bash command run from the repository root.

    Args:
        name (str): Row name in the table.
        cmd (str): The command.
        cap (float): Most seconds it may take (also bounded by the check's budget).
        log (str): The ``$OUT`` log file that receives its output.
        skip (str): Why it does not run in this mode ('' when it runs).
        env (dict): Variables added to the check's environment.
        kind (str): How its result is read: ``plain`` (exit status), ``pytest``,
            ``bench`` (exit status, Markdown table kept) or ``train`` (probe).
        probe (str): ``train``: the ``probe.json`` the run writes.
        expect (dict): ``train``: facts the probe must show, e.g. ``{'backend': 'nccl'}``.
        with_next (bool): Runs at the same time as the next step.
    """
    name: str
    cmd: str = ''
    cap: float = 60
    log: str = 'build.log'
    skip: str = ''
    env: Dict[str, str] = field(default_factory=dict)
    kind: str = 'plain'
    probe: str = ''
    expect: Dict = field(default_factory=dict)
    with_next: bool = False


def config_name(model: str, iters: int, checkpoint_at: int = 0) -> str:
    """File name ``train_config.py`` gives a run: ``gan_4_ckpt4.py``, ``baseline_30.py``."""
    return f'{model}_{iters}' + (f'_ckpt{checkpoint_at}' if checkpoint_at else '') + '.py'


def training_steps(device: str, python: str, work: str, iters: int) -> List[Step]:
    """Shapes and configs, the four timed trainings, the resume and the launch (at once)."""
    py, q = shlex.quote(python), shlex.quote
    cfgs, runs, shapes = osp.join(work, 'configs'), osp.join(work, 'runs'), osp.join(work, 'shapes')
    cuda = device == 'cuda'
    first, total = (4, 8) if cuda else (2, 3)   # resume: train `first`, resume to `total`
    procs = 1 if cuda else 2  # one CPU process cannot open MMEngine's process group
    size, num_train = (256, 64) if cuda else (128, 8)
    run_specs = [f'baseline:{iters}', f'gan:{iters}', f'gan:{first}:{first}', f'gan:{total}',
                 f'gan:{first}']
    steps = [Step('shapes+configs', log='train.log', cap=90, cmd=(
        f'{py} tools/generate_shapes.py --out {q(shapes)} --num-train {num_train} '
        f'--num-val 4 --size {size} && {py} tools/gpu_check/train_config.py '
        f'--data-root {q(shapes)} --out-dir {q(cfgs)} --runs ' + ' '.join(run_specs)))]

    def train(cfg, work_dir, extra='', launcher=py):
        return (f'{launcher} tools/train.py {q(osp.join(cfgs, cfg))} '
                f'--work-dir {q(osp.join(runs, work_dir))}{extra}')

    for precision in ('fp32', 'amp'):
        for model in ('baseline', 'gan'):
            name = f'{model}-{precision}'
            amp = ' --amp' if precision == 'amp' else ''
            steps.append(Step(
                f'train-{name}', train(config_name(model, iters), name, amp), cap=90,
                log='train.log', kind='train', probe=osp.join(runs, name, 'probe.json'),
                skip='' if cuda or precision == 'fp32' else '--amp needs CUDA'))
    steps.append(Step(  # untimed, so beside the launch
        'resume-gan', cap=120, log='resume_launch.log', kind='train', with_next=True,
        cmd=(train(config_name('gan', first, first), 'resume') + ' && ' +
             train(config_name('gan', total), 'resume', ' --resume')),
        probe=osp.join(runs, 'resume', 'probe.json'),
        expect=dict(start_iter=first, end_iter=total)))
    backend = 'nccl' if cuda else 'gloo'
    steps.append(Step(
        f'launch-{backend}', cap=90, log='resume_launch.log', kind='train',
        cmd=train(config_name('gan', first), 'launch', ' --launcher pytorch', launcher=(
            f'{py} -m torch.distributed.run --standalone --nproc_per_node {procs}')),
        probe=osp.join(runs, 'launch', 'probe.json'),
        expect=dict(model_wrapper='GradAllReduceDataParallel', backend=backend,
                    world_size=procs, end_iter=first)))
    return steps


def build_plan(device: str, python: str, carry: str, work: str, arch: str,
               iters: int, jobs: int = 16) -> List[Step]:
    """All steps of the check (see the module docstring).

    Args:
        device (str): ``'cuda'`` or ``'cpu'``.
        python (str): The interpreter the steps run.
        carry (str): The carry folder (wheels and the mmcv sdist).
        work (str): A scratch folder: site-packages, shapes, configs, runs.
        arch (str): ``TORCH_CUDA_ARCH_LIST`` for the builds, e.g. ``'9.0'``.
        iters (int): Iterations of each timed training.
        jobs (int): Parallel compile jobs of the mmcv build.
    """
    if device not in ('cuda', 'cpu'):
        raise ValueError(f"device must be 'cuda' or 'cpu', got {device!r}")
    if iters < 1:
        raise ValueError(f'iters must be >= 1, got {iters}')
    py, q = shlex.quote(python), shlex.quote
    site = osp.join(work, 'site')
    cuda = device == 'cuda'
    on_cpu = '' if cuda else 'CPU mode uses the current environment'
    pip = f'{py} -m pip install --no-index --no-deps --no-compile --disable-pip-version-check'
    build_env = dict(FORCE_CUDA='1', TORCH_CUDA_ARCH_LIST=arch)
    steps = [
        Step('env', cap=60, cmd=(
            'nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader;'
            ' nvcc --version | tail -n 2; nproc; '
            f'{py} -c "import sys, torch; print(\'python\', sys.version.split()[0], '
            "'torch', torch.__version__, 'cuda', torch.version.cuda, "
            "torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')\"")),
        Step('carry-check', f'{py} tools/gpu_check/carry.py {q(carry)}', cap=60,
             skip='' if cuda or osp.isdir(carry) else f'no {carry} (tools/gpu_check.sh prepare)'),
        # mmcv's setup.py and mmengine's package_utils import pkg_resources, which left
        # setuptools at 81: the carried setuptools 80.9 then joins the site folder
        Step('install-wheels', cap=120, skip=on_cpu, cmd=(
            f'{pip} --target {q(site)} {q(carry)}/*.whl && {{ {py} -c "import pkg_resources" '
            f'|| {pip} --target {q(site)} {q(carry)}/setuptools-fallback/*.whl; }}')),
        Step('build-mmcv', cap=420, skip=on_cpu, with_next=True,
             env=dict(build_env, MMCV_WITH_OPS='1', MAX_JOBS=str(jobs)),
             cmd=f'{pip} --no-build-isolation --target {q(site)} {q(carry)}/mmcv-*.tar.gz'),
        Step('build-project', f'{py} setup.py build_ext --inplace', cap=300, skip=on_cpu,
             env=dict(build_env, MAX_JOBS='8')),
        Step('imports', f'{py} tools/gpu_check/carry.py --imports ' + ' '.join(IMPORTS), cap=120),
        # only the files with CUDA tests: another file's import error stops none of them;
        # the training data and configs are written meanwhile (CPU work)
        Step('cuda-tests', cap=150, log='tests.log', kind='pytest', with_next=True, cmd=(
            f'{py} -m pytest -q -m cuda -p no:cacheprovider --continue-on-collection-errors '
            "$(grep -rl 'mark.cuda' --include='test_*.py' tests)")),
    ]
    data, *trainings = training_steps(device, python, work, iters)
    bench = Step('benchmark', f'{py} tools/analysis_tools/benchmark_prroi_pool.py --device cuda', cap=120,
                 log='bench.log', kind='bench', skip='' if cuda else 'needs CUDA')
    return steps + [data, bench] + trainings
