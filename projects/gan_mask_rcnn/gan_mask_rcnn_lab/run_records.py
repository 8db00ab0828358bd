"""The finished runs of a ``tools/run_experiment.py`` work directory and their configs.

A run ``<work_dir>/<model>_seed<seed>`` is finished when its test metrics and its
``wall_seconds.txt`` exist. The tools that re-tabulate runs of several work dirs
(``tools/analysis_tools/{rerun_spread,pool_seeds}.py``, ``--baseline-from``) compare their
run configs with ``comparable_config`` / ``config_difference`` before pooling them.

The float kernels a CPU training ran in round its sums their own way, and a short
run moves with them (the drift is measured in projects/gan_mask_rcnn/results/), so
each run also keeps the kernel environment of every process that trained it
(``environment.json``, see ``record_environment``), and seeds of other kernel
environments are not pooled unnoticed.
"""
import difflib
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.config import Config

from .mim_runs import latest_metrics

# set by `mim train mmdet` (mmdet's tools/train.py: --work-dir, --launcher, --resume)
RUN_KEYS = ('work_dir', 'launcher', 'resume')
SPLIT_FILES = ('train_split.json', 'val_split.json')
# environment variables that select or split the float kernels of a CPU training
KERNEL_ENV = ('ATEN_CPU_CAPABILITY', 'ONEDNN_MAX_CPU_ISA', 'MKL_ENABLE_INSTRUCTIONS',
              'OMP_NUM_THREADS')


def read(path: str) -> str:
    """The text of ``path``."""
    with open(path) as f:
        return f.read()


def write_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``: the two
    processes of one seed (``--models``) rewrite the split and result files while the
    other's training or test may be reading them, and must never see half a file."""
    tmp = f'{path}.{os.getpid()}.tmp'
    with open(tmp, 'w') as f:
        f.write(text)
    os.replace(tmp, path)


def map_strings(obj, fn):
    """``obj`` (nested dicts, lists, tuples) with ``fn`` applied to every string."""
    if isinstance(obj, str):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: map_strings(v, fn) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(map_strings(v, fn) for v in obj)
    return obj


def normalize_path(text: str) -> str:
    """``text`` with ``.``/``..`` segments resolved if it is an absolute path that has
    them (``/a/repo/../data/x/`` -> ``/a/data/x/``, trailing separator kept);
    any other string as it is."""
    if not osp.isabs(text) or not ({'.', '..'} & set(text.split(os.sep))):
        return text
    return osp.normpath(text) + (os.sep if text.endswith(os.sep) else '')


def comparable_config(cfg_file: str, old: str = '', new: str = '') -> dict:
    """The run config in ``cfg_file`` as a dict that two runs of the same config share:
    paths into the run's work dir ``old`` replaced by ``new``, absolute paths
    normalised (data roots written as ``<checkout>/../data/...`` by two checkouts
    of the repository, or before run_experiment normalised them, are one root), and
    without the keys that mmdet's tools/train.py sets from its command line when
    MMEngine's runner re-dumps the config (``work_dir``, ``launcher``, ``resume``;
    ``load_from`` of a resumed run, which it sets to None whatever the run started
    from).

    Compared as loaded dicts, not as text: the dumped text wraps lines by their
    length, and the paths into two work dirs differ in length.
    """
    cfg = Config.fromfile(cfg_file).to_dict()
    if old:
        cfg = map_strings(cfg, lambda text: text.replace(old, new))
    cfg = map_strings(cfg, normalize_path)
    for key in RUN_KEYS + (('load_from',) if cfg.get('resume') else ()):
        cfg.pop(key, None)
    return cfg


def config_difference(a: dict, b: dict, name_a: str, name_b: str) -> str:
    """The first lines of a unified diff of two ``comparable_config`` dicts; '' if equal.

    A resumed run has no ``load_from`` to compare; it is then left out of both.
    """
    if ('load_from' in a) != ('load_from' in b):
        a, b = ({k: v for k, v in c.items() if k != 'load_from'} for c in (a, b))
    if a == b:
        return ''
    diff = difflib.unified_diff(Config(a).pretty_text.splitlines(),
                                Config(b).pretty_text.splitlines(), name_a, name_b,
                                n=2, lineterm='')
    return '\n'.join(list(diff)[:24])


def finished_run(run_dir: str) -> Optional[Tuple[Dict[str, float], float]]:
    """Test metrics and wall seconds of the run in ``run_dir``; None until it has both."""
    metrics = latest_metrics(osp.join(run_dir, 'test'))
    wall_file = osp.join(run_dir, 'wall_seconds.txt')
    if metrics is None or not osp.exists(wall_file):
        return None
    return metrics, float(read(wall_file))


def check_same_splits(work_dirs: List[str]) -> None:
    """Stop unless the work dirs hold the same held-out split files (or none)."""
    first = work_dirs[0]
    for name in SPLIT_FILES:
        for other in work_dirs[1:]:
            paths = [osp.join(d, name) for d in (first, other)]
            texts = [read(p) if osp.exists(p) else None for p in paths]
            if texts[0] != texts[1]:
                raise SystemExit(f'{paths[0]} and {paths[1]} differ: the runs were '
                                 'evaluated on other splits')


def kernel_environment() -> Dict[str, Optional[str]]:
    """What decides the float kernels of a training started from this process: the
    torch version, the CPU capability ATen dispatches to (e.g. ``AVX512``, or
    ``AVX2`` on the same machine with ``ATEN_CPU_CAPABILITY=avx2``) and the
    ``KERNEL_ENV`` variables (None where unset)."""
    return dict(torch=torch.__version__,
                cpu_capability=torch.backends.cpu.get_cpu_capability(),
                **{key: os.environ.get(key) for key in KERNEL_ENV})


def record_environment(run_dir: str) -> List[dict]:
    """Add this process's ``kernel_environment`` to ``<run_dir>/environment.json``
    (a list: one entry per distinct environment that trained the run, e.g. a run
    resumed on another machine has two) and return the list."""
    os.makedirs(run_dir, exist_ok=True)
    envs = run_environments(run_dir) or []
    env = kernel_environment()
    if env not in envs:
        envs.append(env)
        write_atomic(osp.join(run_dir, 'environment.json'), json.dumps(envs, indent=2))
    return envs


def run_environments(run_dir: str) -> Optional[List[dict]]:
    """The recorded kernel environments of the run; None for a run trained before
    they were recorded."""
    path = osp.join(run_dir, 'environment.json')
    return json.loads(read(path)) if osp.exists(path) else None


def environment_label(env: dict) -> str:
    """A ``kernel_environment`` in one line, e.g. ``torch 2.13.0+cpu, AVX512,
    OMP_NUM_THREADS=1``."""
    return ', '.join([f"torch {env['torch']}", env['cpu_capability']]
                     + [f'{key}={env[key]}' for key in KERNEL_ENV if env.get(key)])


def environments_by_label(envs: Dict[str, Optional[List[dict]]]) -> Dict[str, List[str]]:
    """``{environment_label: [run names]}`` of ``{run name: run_environments}``;
    runs without a record go under ``'unrecorded'``."""
    labels = {}
    for run, run_envs in envs.items():
        for label in ([environment_label(e) for e in run_envs] if run_envs
                      else ['unrecorded']):
            labels.setdefault(label, []).append(run)
    return labels


def environment_note(envs: Dict[str, Optional[List[dict]]]) -> str:
    """One Markdown line on the kernel environments the runs trained in."""
    labels = environments_by_label(envs)
    if len(labels) == 1:
        return f'Kernel environment of every training: {next(iter(labels))}.'
    return ('**The runs trained in different kernel environments**, whose float sums '
            'round differently (projects/gan_mask_rcnn/results/README.md): '
            + '; '.join(f'{label} ({", ".join(names)})' for label, names in labels.items())
            + '.')
