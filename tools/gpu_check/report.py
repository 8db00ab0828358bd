"""The GPU check's results: one record per step, the numbers read from each step's
output, and the one table that ``tools/gpu_check.sh run`` prints and writes.

Standard library only: the check imports it before anything is installed.
"""
import json
import math
import os.path as osp
import re
import shutil
import statistics
import subprocess
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

OK, FAIL, TIMEOUT, SKIP = 'ok', 'FAIL', 'TIMEOUT', 'skip'
WARMUP_ITERS = 5  # iterations left out of the time per iteration (CUDA init, cudnn tuning)


@dataclass
class StepResult:
    """What one step of the check did.

    Args:
        name (str): Step name, e.g. ``train-gan-fp32``.
        status (str): ``ok``, ``FAIL``, ``TIMEOUT`` or ``skip``.
        seconds (float): Wall time of the step.
        numbers (str): The key numbers, e.g. ``0.112 s/it, peak 2101 MiB``, or why
            the step failed or was skipped.
        data (dict): The numbers as values (for the JSON record and the ratios).
    """
    name: str
    status: str
    seconds: float = 0.0
    numbers: str = ''
    data: Dict = field(default_factory=dict)


def parse_pytest_summary(output: str) -> Dict[str, int]:
    """Counts of pytest's last summary line, e.g. ``{'passed': 12, 'skipped': 3}``.

    Reads ``12 passed, 1 failed, 3 skipped, 250 deselected in 4.21s`` (with or
    without the ``====`` frame); an output without such a line gives ``{}``.
    """
    for line in reversed(output.splitlines()):
        if re.search(r'\bin [\d.]+s\b', line):
            counts = re.findall(r'(\d+) (passed|failed|skipped|deselected|errors?|'
                                r'xfailed|xpassed|warnings?)', line)
            if counts:
                return {('error' if k.startswith('error') else k): int(n)
                        for n, k in counts if not k.startswith('warning')}
    return {}


def pytest_numbers(counts: Dict[str, int]) -> str:
    """``'12 passed, 0 failed, 3 skipped'`` (errors named only when there are any)."""
    text = ', '.join(f'{counts.get(k, 0)} {k}' for k in ('passed', 'failed', 'skipped'))
    if counts.get('error'):
        text += f", {counts['error']} errors"
    return text


def summarize_probe(probe: dict, warmup: int = WARMUP_ITERS) -> Dict:
    """Numbers of one training run from the probe hook's record.

    Args:
        probe (dict): ``gpu_check_probe.GpuCheckProbeHook``'s JSON: ``iter_times``
            (s, one per iteration), ``peak_memory_mib`` (None on a CPU),
            ``nonfinite`` (``[iteration, loss name, value]`` of every non-finite
            loss), ``start_iter``, ``end_iter``, ``model_wrapper``, ``backend``,
            ``world_size``.
        warmup (int): First iterations left out of the median time, as long as
            at least one iteration remains.

    Returns:
        dict: ``s_per_iter`` (median), ``iters``, ``peak_memory_mib``,
        ``losses_finite`` and the probe's run facts.
    """
    times = probe.get('iter_times', [])
    timed = times[warmup:] if len(times) > warmup else times
    return dict(
        s_per_iter=statistics.median(timed) if timed else math.nan,
        iters=len(times), peak_memory_mib=probe.get('peak_memory_mib'),
        losses_finite=not probe.get('nonfinite') and probe.get('num_losses', 0) > 0,
        nonfinite=probe.get('nonfinite', [])[:3],
        **{k: probe.get(k) for k in ('start_iter', 'end_iter', 'model_wrapper', 'backend',
                                     'world_size', 'device')})


def train_numbers(summary: Dict) -> str:
    """``'0.112 s/it, peak 2101 MiB, losses finite (30 it)'`` of ``summarize_probe``."""
    text = f"{summary['s_per_iter']:.3f} s/it"
    if summary.get('peak_memory_mib') is not None:
        text += f", peak {summary['peak_memory_mib']:.0f} MiB"
    finite = 'losses finite' if summary['losses_finite'] else \
        f"NON-FINITE losses {summary['nonfinite']}"
    return f"{text}, {finite} ({summary['iters']} it)"


def ratio_result(precision: str, baseline: Optional[StepResult],
                 gan: Optional[StepResult]) -> StepResult:
    """The GAN / baseline row of one precision (time per iteration, peak memory)."""
    name = f'gan/baseline-{precision}'
    if not (baseline and gan and baseline.status == OK and gan.status == OK):
        return StepResult(name, SKIP, numbers='needs both trainings ok')
    b, g = baseline.data, gan.data
    data = {'time_ratio': g['s_per_iter'] / b['s_per_iter']}
    text = f"time {data['time_ratio']:.2f}x"
    if b.get('peak_memory_mib') and g.get('peak_memory_mib') is not None:
        data['memory_ratio'] = g['peak_memory_mib'] / b['peak_memory_mib']
        text += f", memory {data['memory_ratio']:.2f}x"
    return StepResult(name, OK, numbers=text, data=data)


def markdown_table(results: List[StepResult]) -> str:
    """The check's table: step, status, seconds, key numbers."""
    lines = ['| step | status | seconds | key numbers |', '|---|---|---|---|']
    for r in results:
        numbers = r.numbers.replace('|', '/').replace('\n', ' ')
        lines.append(f'| {r.name} | {r.status} | {r.seconds:.0f} | {numbers} |')
    return '\n'.join(lines)


def markdown_lines(output: str) -> str:
    """The Markdown table rows (lines starting with ``|``) of a tool's output."""
    return '\n'.join(line for line in output.splitlines() if line.lstrip().startswith('|'))


def to_json(results: List[StepResult], header: Dict) -> str:
    """The results and the machine facts as one JSON document (NaN written as null)."""
    def clean(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value
    steps = [dict(asdict(r), seconds=round(r.seconds, 1)) for r in results]
    return json.dumps(clean(dict(header, steps=steps)), indent=1)


def ptxas_registers(output: str) -> List[Dict]:
    """Registers and spills of each kernel from nvcc's ``-Xptxas -v`` lines.

    Reads ``Compiling entry function '_Z...' for 'sm_90'``, then that function's
    ``N bytes stack frame, S bytes spill stores, L bytes spill loads`` and
    ``Used R registers`` lines. Returns one dict per kernel: ``kernel`` (its
    name, demangled where ``cu++filt`` or ``c++filt`` is found), ``arch``,
    ``registers``, ``spill_stores``, ``spill_loads`` (bytes).
    """
    rows, current = [], None
    for line in output.splitlines():
        entry = re.search(r"Compiling entry function '(\w+)' for '(\w+)'", line)
        if entry:
            current = dict(kernel=entry.group(1), arch=entry.group(2))
            rows.append(current)
            continue
        if current is None:
            continue
        spill = re.search(r'(\d+) bytes spill stores, (\d+) bytes spill loads', line)
        if spill:
            current.update(spill_stores=int(spill.group(1)), spill_loads=int(spill.group(2)))
        used = re.search(r'Used (\d+) registers', line)
        if used:
            current['registers'] = int(used.group(1))
    rows = [r for r in rows if 'registers' in r]
    for row, name in zip(rows, demangle([r['kernel'] for r in rows])):
        row['kernel'] = name
    return rows


def demangle(names: List[str]) -> List[str]:
    """``coor_backward_kernel<float, float>`` for each mangled kernel name: its last
    name and template arguments; the names as they are without a demangler."""
    tool = shutil.which('cu++filt') or shutil.which('c++filt')
    if not names or tool is None:
        return names
    try:
        out = subprocess.run([tool], input='\n'.join(names), capture_output=True, text=True,
                             timeout=30).stdout.splitlines()
    except (OSError, subprocess.TimeoutExpired):
        return names
    if len(out) != len(names):
        return names
    short = []
    for text in out:  # the first name followed by its parameter list
        found = re.search(r'(\w+(?:<[^()]*>)?)\((?!anonymous)', text.replace('c10::', ''))
        short.append(found.group(1) if found else text)
    return short


def read_result(step, rc: Optional[int], output: str, seconds: float) -> StepResult:
    """The table row of a step (``plan.Step``) that ran (``rc`` None: stopped at its
    time limit), from its whole output."""
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
    elif step.kind == 'build':
        data = {'kernels': ptxas_registers(output)}
        if rc == 0 and data['kernels']:
            spills = sum(k.get('spill_stores', 0) > 0 for k in data['kernels'])
            numbers = f"{len(data['kernels'])} kernels, {spills} spill (table below)"
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


def write_report(results: List[StepResult], header: Dict, out: str) -> str:
    """Write ``gpu_check.md`` and ``gpu_check.json`` into ``out``; return the Markdown:
    the steps, the timed GAN / baseline ratio, the benchmark and the kernels' registers."""
    by_name = {r.name: r for r in results}
    rows = list(results)
    if 'train-gan-fp32' in by_name:
        rows.append(ratio_result('fp32', by_name.get('train-baseline-fp32'),
                                 by_name['train-gan-fp32']))
    facts = ', '.join(f'{k} {v}' for k, v in header.items())
    text = f'GPU check, {facts}\n\n' + markdown_table(rows)
    bench = by_name.get('benchmark')
    if bench is not None and bench.data.get('table'):
        text += '\n\nbenchmark (tools/analysis_tools/benchmark_prroi_pool.py):\n\n' + \
            bench.data['table']
    build = by_name.get('build-project')
    if build is not None and build.data.get('kernels'):
        lines = ['| kernel | arch | registers | spill stores (B) | spill loads (B) |',
                 '|---|---|---|---|---|']
        lines += [f"| {k['kernel']} | {k['arch']} | {k['registers']} | "
                  f"{k.get('spill_stores', '-')} | {k.get('spill_loads', '-')} |"
                  for k in build.data['kernels']]
        text += '\n\nkernels (nvcc -Xptxas -v):\n\n' + '\n'.join(lines)
    with open(osp.join(out, 'gpu_check.md'), 'w') as f:
        f.write(text + '\n')
    with open(osp.join(out, 'gpu_check.json'), 'w') as f:
        f.write(to_json(rows, header))
    return text
