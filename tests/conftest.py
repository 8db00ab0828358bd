"""Shared fixtures: a tiny synthetic data set, tiny configs and a tiny checkpoint.

- ``shapes_root``: a tiny synthetic shapes set (8 train / 4 val images, 128 px) in a
  session-wide temporary folder.
- ``tiny_cfg(config, data_root, work_dir, max_iters)``: an mmengine ``Config`` of any
  CPU config of this project shrunk for seconds-long runs (128 px, few proposals).
- ``tiny_checkpoint``: ``(config_file, checkpoint_file)`` of the baseline CPU config
  trained for a few iterations on ``shapes_root``, once per session.
- ``train_with_resume(make_cfg, max_iters)``: train half the schedule, stop, resume.
- ``fake_run(work, seed, segm, lr, model)``: a finished ``tools/run_experiment.py`` run.
- ``glas_cc``: the GlaS-cc folder (``$GLAS_CC_ROOT``, else ``data/glas_cc``); the
  tests that read it skip, naming where they looked, when it is absent.
"""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
from mmengine.config import Config

from gan_mask_rcnn_lab.config_utils import rescale_schedule, set_data_root, set_image_scale
from gan_mask_rcnn_lab.data_roots import glas_cc_missing, glas_cc_root
from gan_mask_rcnn_lab.synthetic_shapes import generate_shapes

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = osp.join(REPO, 'configs', 'gan_mask_rcnn')
BASELINE_CPU = osp.join(CONFIGS, 'mask-rcnn_r18_fpn_shapes-cpu.py')
TINY_SIZE = 128


def tiny_cfg(config, data_root, work_dir, max_iters=4, size=TINY_SIZE):
    """Load ``config`` and shrink it so that training takes seconds on a CPU.

    Args:
        config (str): Path of a config under ``configs/``.
        data_root (str): Folder with ``annotations/{train,val}.json`` and images.
        work_dir (str): Where logs and checkpoints go.
        max_iters (int): Training iterations; one checkpoint at the end.
        size (int): Images are resized to fit ``size`` x ``size``.
    """
    cfg = Config.fromfile(config)
    set_data_root(cfg, data_root)
    set_image_scale(cfg, size)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].num_workers = 0
        cfg[key].persistent_workers = False
    model = cfg.model
    model.train_cfg.rpn_proposal.max_per_img = 64
    model.train_cfg.rcnn.sampler.num = 32
    model.test_cfg.rpn.max_per_img = 64
    rescale_schedule(cfg, max_iters)
    cfg.default_hooks.logger.interval = 1
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    cfg.randomness = dict(seed=0)
    cfg.work_dir = work_dir
    cfg.launcher = 'none'
    return cfg


def fake_run(work, seed, segm, lr=0.02, model='baseline'):
    """Write a finished ``tools/run_experiment.py`` run ``<work>/<model>_seed<seed>``:
    its re-dumped config (paths into its own dir, its seed, SGD at ``lr``), test
    metrics (``segm_mAP`` = ``segm``, ``bbox_mAP`` = 0.1) and wall time.

    Args:
        work (pathlib.Path): The experiment's work dir.
    """
    run = work / f'{model}_seed{seed}'
    (run / 'test' / 'stamp').mkdir(parents=True)
    (run / 'config.py').write_text(
        f"work_dir = '{run}'\nlauncher = 'none'\nrandomness = dict(seed={seed})\n"
        f"optim_wrapper = dict(optimizer=dict(type='SGD', lr={lr}))\n"
        f"test_evaluator = dict(outfile_prefix='{run}/test/coco')\n")
    (run / 'test' / 'stamp' / 'stamp.json').write_text(json.dumps(
        {'coco/segm_mAP': segm, 'coco/bbox_mAP': 0.1, 'step': 20}) + '\n')
    (run / 'wall_seconds.txt').write_text('60\n')


def train_with_resume(make_cfg, max_iters):
    """Train ``max_iters // 2`` iterations, stop, then resume to ``max_iters``.

    Args:
        make_cfg (callable): Returns a fresh ``Config`` of the full schedule
            (``max_iters`` iterations) in the same work dir on every call.
        max_iters (int): Iterations of the full schedule (even).
    """
    from mmengine.runner import Runner
    first = make_cfg()
    first.train_cfg.max_iters = max_iters // 2  # same schedule, stopped half-way
    first.default_hooks.checkpoint.interval = max_iters // 2
    Runner.from_cfg(first).train()
    second = make_cfg()
    second.resume = True
    Runner.from_cfg(second).train()


def torchrun_train(cfg, hook_module, hook_type, cfg_file, nproc=2):
    """Train ``cfg`` with ``hook_type`` (a hook of tests/``hook_module``.py) on
    ``nproc`` CPU ranks: ``torchrun --nproc_per_node nproc tools/train.py cfg_file
    --launcher pytorch`` from the repository, with tests/ importable. Fails the
    test with the ranks' output if training fails."""
    cfg.custom_imports = dict(imports=['gan_mask_rcnn', hook_module],
                              allow_failed_imports=False)
    cfg.custom_hooks = [dict(type=hook_type)]
    cfg.dump(cfg_file)
    torchrun = osp.join(osp.dirname(sys.executable), 'torchrun')
    cmd = [torchrun, '--standalone', '--nproc_per_node', str(nproc),
           osp.join(REPO, 'tools', 'train.py'), cfg_file, '--launcher', 'pytorch']
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [osp.dirname(osp.abspath(__file__)), os.environ.get('PYTHONPATH', '')]))
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]


@pytest.fixture(scope='session')
def shapes_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('shapes'))
    generate_shapes(root, num_images=8, size=TINY_SIZE, seed=0, split='train')
    generate_shapes(root, num_images=4, size=TINY_SIZE, seed=0, split='val')
    return root


@pytest.fixture(scope='session')
def glas_cc():
    root = glas_cc_root(REPO)
    if glas_cc_missing(root):
        pytest.skip(glas_cc_missing(root))
    return root


@pytest.fixture(scope='session')
def tiny_cfg_factory():
    return tiny_cfg


@pytest.fixture(scope='session')
def tiny_checkpoint(shapes_root, tmp_path_factory):
    """Train the baseline CPU config for a few iterations (in-process, once)."""
    from mmengine.runner import Runner
    work_dir = str(tmp_path_factory.mktemp('tiny_baseline'))
    cfg = tiny_cfg(BASELINE_CPU, shapes_root, work_dir, max_iters=6)
    cfg_file = osp.join(work_dir, 'tiny_baseline.py')
    cfg.dump(cfg_file)
    Runner.from_cfg(Config.fromfile(cfg_file)).train()
    ckpt = osp.join(work_dir, 'iter_6.pth')
    assert osp.exists(ckpt), os.listdir(work_dir)
    return cfg_file, ckpt


def pytest_configure(config):
    # mmengine's runner and DetInferencer print a lot; keep the repo importable in tests
    # run from elsewhere (tools/ modules are imported by path).
    if REPO not in sys.path:
        sys.path.insert(0, REPO)
