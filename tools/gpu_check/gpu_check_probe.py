"""A hook that records what one training run of the GPU check did, for its table.

``tools/gpu_check/train_config.py`` adds it to the configs it writes (the folder is on
``PYTHONPATH`` during the check). At the end of training, rank 0 writes
``<work_dir>/probe.json``: the model wrapper, the process group's backend and size,
the device, the first and last iteration, the wall time of every iteration (CUDA
synchronised), the peak CUDA memory and every non-finite loss.
"""
import json
import math
import os.path as osp
import time

import torch
from mmengine import dist
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class GpuCheckProbeHook(Hook):
    """Record the facts of a training run into ``<work_dir>/<out_file>``.

    Runs before ``LoggerHook`` (priority ``ABOVE_NORMAL``), which resets CUDA's peak
    memory statistics when it logs.

    Args:
        out_file (str): File name inside the run's work dir.
    """
    priority = 'ABOVE_NORMAL'

    def __init__(self, out_file: str = 'probe.json'):
        self.out_file = out_file
        self.record = {}
        self._last = 0.0

    def _now(self) -> float:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter()

    def before_train(self, runner) -> None:
        cuda = torch.cuda.is_available()
        wrappers = getattr(runner.optim_wrapper, 'optim_wrappers', None)
        self.record = dict(
            model_wrapper=type(runner.model).__name__,
            backend=dist.get_backend() if dist.is_distributed() else None,
            world_size=dist.get_world_size(),
            device=torch.cuda.get_device_name() if cuda else 'cpu',
            optim_wrappers=({k: type(v).__name__ for k, v in wrappers.items()}
                            if wrappers else type(runner.optim_wrapper).__name__),
            start_iter=runner.iter, iter_times=[], num_losses=0, nonfinite=[],
            peak_memory_mib=0.0 if cuda else None)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        self._last = self._now()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        now = self._now()
        self.record['iter_times'].append(now - self._last)
        for name, value in (outputs or {}).items():
            if 'loss' not in name:
                continue
            value = float(value)
            self.record['num_losses'] += 1
            if not math.isfinite(value):
                self.record['nonfinite'].append([runner.iter + 1, name, value])
        if torch.cuda.is_available():
            self.record['peak_memory_mib'] = max(self.record['peak_memory_mib'],
                                                 torch.cuda.max_memory_allocated() / 2**20)
        self._last = now

    def after_train(self, runner) -> None:
        self.record['end_iter'] = runner.iter
        if dist.get_rank() == 0:
            with open(osp.join(runner.work_dir, self.out_file), 'w') as f:
                json.dump(self.record, f, indent=1)
