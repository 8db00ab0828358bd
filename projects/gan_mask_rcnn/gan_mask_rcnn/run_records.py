"""The finished runs of a ``tools/run_experiment.py`` work directory and their configs.

A run ``<work_dir>/<model>_seed<seed>`` is finished when its test metrics and its
``wall_seconds.txt`` exist. The tools that re-tabulate runs of several work dirs
(``tools/analysis/{rerun_spread,pool_seeds}.py``, ``--baseline-from``) compare their
run configs with ``comparable_config`` / ``config_difference`` before pooling them.
"""
import difflib
import os
import os.path as osp
from typing import Dict, List, Optional, Tuple

from mmengine.config import Config

from .mim_runs import latest_metrics

# set by `mim train mmdet` (mmdet's tools/train.py: --work-dir, --launcher, --resume)
RUN_KEYS = ('work_dir', 'launcher', 'resume')
SPLIT_FILES = ('train_split.json', 'val_split.json')


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


def replace_in_strings(obj, old: str, new: str):
    """``obj`` (nested dicts, lists, tuples) with ``old`` replaced by ``new`` in every string."""
    if isinstance(obj, str):
        return obj.replace(old, new)
    if isinstance(obj, dict):
        return {k: replace_in_strings(v, old, new) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(replace_in_strings(v, old, new) for v in obj)
    return obj


def comparable_config(cfg_file: str, old: str = '', new: str = '') -> dict:
    """The run config in ``cfg_file`` as a dict that two runs of the same config share:
    paths into the run's work dir ``old`` replaced by ``new``, and without the keys
    that mmdet's tools/train.py sets from its command line when MMEngine's runner
    re-dumps the config (``work_dir``, ``launcher``, ``resume``; ``load_from`` of a
    resumed run, which it sets to None whatever the run started from).

    Compared as loaded dicts, not as text: the dumped text wraps lines by their
    length, and the paths into two work dirs differ in length.
    """
    cfg = Config.fromfile(cfg_file).to_dict()
    if old:
        cfg = replace_in_strings(cfg, old, new)
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
