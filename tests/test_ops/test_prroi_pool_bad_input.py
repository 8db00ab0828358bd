"""Bad input to every public PrRoIPool entry point raises, never crashes.

On the GPU image's torch (2.11.0+cu130, Python 3.12) a bad batch index once
ended the interpreter with a segmentation fault. The calls therefore run in a
child process: a crash fails this test and nothing else. Each call must raise
ValueError or RuntimeError whose message names the bad argument, except a bad batch
index passed to the CUDA ops through ``torch.ops`` directly, which the kernels
guard without a host sync (NaN for that RoI, see ``CUDA_DIRECT``).
"""
import json
import os
import subprocess
import sys

import pytest
import torch

SCRIPT = r'''
import json, sys
import torch
from gan_mask_rcnn.ops import PrRoIPool, prroi_pool, prroi_pool_max_levels

device = sys.argv[1]
ops = torch.ops.gan_mask_rcnn
f = torch.zeros(2, 3, 8, 8, device=device)
r = torch.tensor([[0, 1.0, 1.0, 6.0, 6.0]], device=device)
levels = [torch.zeros(2, 3, 8, 8, device=device), torch.zeros(2, 3, 4, 4, device=device)]
pooled = torch.zeros(1, 3, 2, 2, device=device)
level = torch.zeros(1, 3, 2, 2, dtype=torch.uint8, device=device)


def bad_index(value):
    return torch.tensor([[0, 1.0, 1, 6, 6], [value, 1, 1, 6, 6]], device=device)


CALLS = {
    # name: (argument the message must name, call)
    'batch_index_negative': ('batch index', lambda: prroi_pool(f, bad_index(-1), 2)),
    'batch_index_too_large': ('batch index', lambda: prroi_pool(f, bad_index(2), 2)),
    'batch_index_nan': ('batch index', lambda: prroi_pool(f, bad_index(float('nan')), 2)),
    'batch_index_inf': ('batch index', lambda: prroi_pool(f, bad_index(float('inf')), 2)),
    'batch_index_huge': ('batch index', lambda: prroi_pool(f, bad_index(1e30), 2)),
    'batch_index_backward': ('batch index', lambda: ops.prroi_pool_backward(
        torch.zeros(2, 3, 2, 2, device=device), bad_index(5), [2, 3, 8, 8], 2, 2, 1.0)),
    'batch_index_coor_backward': ('batch index', lambda: ops.prroi_pool_coor_backward(
        torch.zeros(2, 3, 2, 2, device=device), torch.zeros(2, 3, 2, 2, device=device), f,
        bad_index(-3), 2, 2, 1.0)),
    'batch_index_max_levels': ('batch index', lambda: prroi_pool_max_levels(
        levels, bad_index(7), 2, [1.0, 0.5])),
    'batch_index_op_direct': ('batch index', lambda: ops.prroi_pool(f, bad_index(9), 2, 2, 1.0)),
    'features_rank': ('features', lambda: prroi_pool(f[0], r, 2)),
    'features_int': ('features', lambda: prroi_pool(f.long(), r.long(), 2)),
    'rois_width': ('rois', lambda: prroi_pool(f, r[:, :4], 2)),
    'rois_rank': ('rois', lambda: prroi_pool(f, r[0], 2)),
    'rois_dtype': ('rois', lambda: prroi_pool(f, r.double(), 2)),
    'rois_device': ('rois', lambda: prroi_pool(f, r.to('meta'), 2)),
    'output_size_zero': ('output_size', lambda: prroi_pool(f, r, 0)),
    'output_size_float': ('output_size', lambda: prroi_pool(f, r, 2.5)),
    'output_size_three': ('output_size', lambda: PrRoIPool((2, 2, 2))),
    'output_size_op_direct': ('output_size', lambda: ops.prroi_pool(f, r, 0, 2, 1.0)),
    'spatial_scale_zero': ('spatial_scale', lambda: prroi_pool(f, r, 2, 0.0)),
    'spatial_scale_nan': ('spatial_scale', lambda: prroi_pool(f, r, 2, float('nan'))),
    'spatial_scale_str': ('spatial_scale', lambda: prroi_pool(f, r, 2, 'a')),
    'grad_output_shape': ('grad_output', lambda: ops.prroi_pool_backward(
        torch.zeros(1, 3, 3, 3, device=device), r, [2, 3, 8, 8], 2, 2, 1.0)),
    'output_shape_coor': ('output', lambda: ops.prroi_pool_coor_backward(
        pooled, torch.zeros(1, 3, 3, 3, device=device), f, r, 2, 2, 1.0)),
    'levels_empty': ('level', lambda: prroi_pool_max_levels([], r, 2, [])),
    'levels_scale_count': ('scale', lambda: prroi_pool_max_levels(levels, r, 2, [1.0])),
    'levels_channels': ('(N, C)', lambda: prroi_pool_max_levels(
        [levels[0], levels[1][:, :2]], r, 2, [1.0, 0.5])),
    'levels_op_direct_empty': ('level', lambda: ops.prroi_pool_max_levels([], r, 2, 2, [])),
    'level_dtype_coor': ('level', lambda: ops.prroi_pool_max_levels_coor_backward(
        pooled, pooled, level.float(), levels, r, 2, 2, [1.0, 0.5])),
}
# Called through torch.ops directly (no Python check), the CUDA kernels take a bad
# batch index without a host sync: that RoI pools to NaN, gets NaN coordinate
# gradients and adds nothing to the feature gradient; the other RoI is untouched.
ones = torch.ones(2, 3, 2, 2, device=device)
CUDA_DIRECT = {
    'batch_index_op_direct': lambda out: bool(out[1].isnan().all() & out[0].isfinite().all()),
    'batch_index_coor_backward': lambda g: bool(g[1, 1:].isnan().all() & g[0].isfinite().all()),
    'batch_index_backward': lambda g: torch.equal(g, ops.prroi_pool_backward(
        ones[:1], bad_index(0)[:1], [2, 3, 8, 8], 2, 2, 1.0)),
}
CALLS['batch_index_backward'] = ('batch index', lambda: ops.prroi_pool_backward(
    ones, bad_index(5), [2, 3, 8, 8], 2, 2, 1.0))
results = {}
for name, (argument, call) in CALLS.items():
    if device == 'cuda' and name in CUDA_DIRECT:
        results[name] = ['ok' if CUDA_DIRECT[name](call()) else 'wrong values', '']
        continue
    try:
        call()
        results[name] = ['no error', '']
    except (ValueError, RuntimeError) as exc:
        message = str(exc).splitlines()[0]
        ok = argument.lower() in message.lower()
        results[name] = ['ok' if ok else f'message does not name {argument!r}', message]
    except Exception as exc:  # noqa: BLE001 - any other type is a failure too
        results[name] = [f'raised {type(exc).__name__}', str(exc)[:200]]
    sys.stdout.flush()
print(json.dumps(results))
'''

DEVICES = ['cpu', pytest.param('cuda', marks=[
    pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason='no GPU')])]


@pytest.mark.parametrize('device', DEVICES)
def test_bad_calls_raise_naming_the_argument(device):
    # the child imports what this process imports (an installed package, or the
    # ops alone through a stub package on PYTHONPATH)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.run([sys.executable, '-c', SCRIPT, device], capture_output=True,
                          text=True, timeout=300, env=env)
    assert proc.returncode == 0, (
        f'the bad calls ended the interpreter (exit {proc.returncode}):\n'
        f'{proc.stderr[-3000:]}')
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    failures = {name: r for name, r in results.items() if r[0] != 'ok'}
    assert not failures, failures
    assert len(results) == 29
