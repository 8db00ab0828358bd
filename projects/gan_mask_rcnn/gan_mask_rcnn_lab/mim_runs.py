"""Run `mim train mmdet` / `mim test mmdet` as subprocesses, resumably, and read metrics.

Shared by the demo (``tools/demo.py``) and the experiment runner
(``tools/run_experiment.py``): each training or test is exactly the command a user
would type, its output goes to a log file while its progress lines are echoed, and
a finished step is skipped on a re-run (an interrupted training resumes from its
last checkpoint).
"""
import glob
import json
import os
import os.path as osp
import re
import subprocess
import sys
from datetime import datetime
from typing import Dict, List, Optional

MIM = [sys.executable, '-m', 'mim']
# mim creates this folder on import without ``exist_ok``: two runs started at once
# on a fresh machine race for it and one dies with FileExistsError.
MIM_CACHE = osp.join(osp.expanduser('~'), '.cache', 'mim')


def run_logged(cmd: List[str], log_file: str,
               echo: str = r'Iter\(|Epoch\(|Error|Traceback') -> None:
    """Run ``cmd``; write all output to ``log_file``; echo lines matching ``echo``.

    Raises:
        RuntimeError: naming the command and the log when it exits non-zero.
    """
    print('$', ' '.join(cmd), flush=True)
    os.makedirs(osp.dirname(osp.abspath(log_file)), exist_ok=True)
    with open(log_file, 'a', buffering=1) as log:  # line-buffered: tail -f works
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env=dict(os.environ, PYTHONUNBUFFERED='1'))
        for line in proc.stdout:
            log.write(line)
            if re.search(echo, line):
                print('   ', line.split(' - INFO - ')[-1].rstrip()[:180], flush=True)
        if proc.wait() != 0:
            raise RuntimeError(f'failed with exit code {proc.returncode}: {" ".join(cmd)} '
                               f'(log: {log_file})')


def run_mim(args: List[str], log_file: str) -> None:
    """Run ``mim <args>`` through :func:`run_logged`, its cache folder made first."""
    os.makedirs(MIM_CACHE, exist_ok=True)
    run_logged(MIM + args, log_file)


def dump_run_config(cfg, cfg_file: str, seed: int) -> str:
    """Fix ``cfg``'s seed, leave evaluation to :func:`mim_test` and write it to ``cfg_file``.

    The training loop's own end-of-training validation is skipped
    (``val_begin`` past ``max_iters``) so that each model is evaluated once.
    """
    cfg.randomness = dict(seed=seed)
    cfg.train_cfg.val_begin = cfg.train_cfg.max_iters + 1
    os.makedirs(osp.dirname(osp.abspath(cfg_file)), exist_ok=True)
    cfg.dump(cfg_file)
    return cfg_file


def final_checkpoint(work_dir: str, max_iters: int) -> str:
    """The checkpoint a training of ``max_iters`` iterations ends with."""
    return osp.join(work_dir, f'iter_{max_iters}.pth')


def mim_train(cfg_file: str, work_dir: str, max_iters: int, log_file: str) -> str:
    """Train unless ``iter_<max_iters>.pth`` exists; resume from a partial run.

    Returns:
        str: The final checkpoint path.
    """
    ckpt = final_checkpoint(work_dir, max_iters)
    if not osp.exists(ckpt):
        resume = ['--resume'] if glob.glob(osp.join(work_dir, 'iter_*.pth')) else []
        run_mim(['train', 'mmdet', cfg_file, '--work-dir', work_dir] + resume, log_file)
    return ckpt


def train_wall_seconds(work_dir: str) -> float:
    """Wall time a training spent, over all its sessions (resumed runs included).

    Sums, over MMEngine's ``<work_dir>/<timestamp>/<timestamp>.log`` files (one per
    start of ``mim train``), the time from each log's first timestamped line to its
    last, so an interrupted run counts the part it lost too.
    """
    total = 0.0
    pattern = re.compile(r'^(\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}) - ')
    for path in glob.glob(osp.join(work_dir, '*', '*.log')):
        if osp.basename(path) != osp.basename(osp.dirname(path)) + '.log':
            continue
        with open(path) as f:
            stamps = [m.group(1) for m in map(pattern.match, f) if m]
        if stamps:
            first, last = (datetime.strptime(t, '%Y/%m/%d %H:%M:%S')
                           for t in (stamps[0], stamps[-1]))
            total += (last - first).total_seconds()
    return total


def latest_metrics(work_dir: str) -> Optional[Dict[str, float]]:
    """The last metrics a test run logged in ``<work_dir>/<timestamp>/<timestamp>.json``.

    Keys lose their ``coco/`` prefix, e.g. ``segm_mAP``. None when there are none.
    """
    for path in sorted(glob.glob(osp.join(work_dir, '*', '*.json')), reverse=True):
        with open(path) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        rows = [r for r in rows if any(k.startswith('coco/') for k in r)]
        if rows:
            return {k.split('/', 1)[1]: v for k, v in rows[-1].items() if '/' in k}
    return None


def mim_test(cfg_file: str, checkpoint: str, work_dir: str, log_file: str) -> Dict[str, float]:
    """Evaluate ``checkpoint`` unless ``work_dir`` already holds its metrics.

    Also dumps the predictions to ``<work_dir>/predictions.pkl``.
    """
    metrics = latest_metrics(work_dir)
    if metrics is None:
        # the predictions are kept for tools/analysis_tools/compare_models.py --work-dirs
        run_mim(['test', 'mmdet', cfg_file, '--checkpoint', checkpoint,
                 '--work-dir', work_dir, '--out', osp.join(work_dir, 'predictions.pkl')],
                log_file)
        metrics = latest_metrics(work_dir)
    if metrics is None:
        raise RuntimeError(f'no metrics found under {work_dir} (log: {log_file})')
    return metrics
