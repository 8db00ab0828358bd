"""The GPU check's results: one record per step, the numbers read from each step's
output, and the one table that ``tools/gpu_check.sh run`` prints and writes.

Standard library only: the check imports it before anything is installed.
"""
import json
import math
import re
import statistics
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
