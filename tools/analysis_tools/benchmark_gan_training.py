"""Training and inference cost of GAN Mask R-CNN against its Mask R-CNN baseline.

One run builds both models from their configs, the GAN model starting from the
baseline's weights (only its discriminators are its own), and measures side by side:

- time per training iteration: both models step on the same pre-loaded batches,
  alternating model by model each iteration (the order flips every iteration) so
  that load from other processes hits both alike; the GAN iterations are
  adversarial (generator step + ``d_steps`` discriminator steps). Each step
  starts from the models' first weights (reloaded, untimed) with the same random
  seed for both, so that a step's work (proposals, positive RoIs) depends on its
  batch only: otherwise the two models drift apart and the ratio measures their
  different numbers of positives as much as the GAN's cost;
- peak memory of training: on CUDA ``torch.cuda.max_memory_allocated``; on CPU the
  peak resident set size (``VmHWM``) of a fresh process (spawned: forking a process
  whose torch thread pool has run can hang) that builds and trains only that model,
  minus its size before building it, with glibc told to map blocks of 64 KiB and
  more directly and give them back at free (``MALLOC_MMAP_THRESHOLD_``), so the
  peak follows the live tensors rather than the heap's leftovers;
- time per inference (``test_step``, batch 1), alternating the same way, measured
  first, while both models still have the same weights (after training they detect
  different numbers of objects, and the mask head's time follows that number).

It prints a Markdown table with medians and GAN / baseline ratios (targets: training
at most 1.15x in time and memory, inference equal within noise), and for the times
also the per-batch ratios (GAN / baseline on the same batch, stepped one after the
other): their median and quartiles, which cancel the batch-to-batch spread that the
ratio of two medians keeps (each median may fall on another batch). Example::

    python tools/analysis_tools/analysis_tools/benchmark_gan_training.py --iters 20
    python tools/analysis_tools/analysis_tools/benchmark_gan_training.py --gan-options model.roi_head.max_disc_rois_per_img=8
    python tools/analysis_tools/analysis_tools/benchmark_gan_training.py \
        --configs configs/gan_mask_rcnn/mask-rcnn_r50_fpn_2k_glas.py \
                  configs/gan_mask_rcnn/gan-mask-rcnn_r50_fpn_2k_glas.py --device cuda
"""
import argparse
import copy
import multiprocessing as mp
import os
import os.path as osp
import statistics
import tempfile
import time
from typing import Callable, Dict, List, Optional, Tuple

import torch
from mmengine.config import Config, DictAction
from mmengine.logging import MessageHub, MMLogger
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from mmdet.registry import MODELS

import gan_mask_rcnn  # noqa: F401  (registers the GAN modules)
from gan_mask_rcnn_lab.config_utils import set_data_root
from gan_mask_rcnn_lab.markdown import markdown_table
from gan_mask_rcnn_lab.synthetic_shapes import generate_shapes

MALLOC_ENV = {'MALLOC_MMAP_THRESHOLD_': '65536', 'MALLOC_TRIM_THRESHOLD_': '0'}
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_CONFIGS = [osp.join(REPO, 'configs', 'gan_mask_rcnn', name) for name in (
    'mask-rcnn_r18_fpn_shapes-cpu.py', 'gan-mask-rcnn_r18_fpn_shapes-cpu.py')]


def build_trainable(cfg: Config, device: str, weights: Optional[dict] = None):
    """Model (GAN schedule adversarial) and its optim wrapper.

    Args:
        cfg (Config): Baseline or GAN config.
        device (str): ``'cpu'`` or ``'cuda'``.
        weights (dict, optional): A baseline ``state_dict`` to start from; only a
            GAN model's discriminators may be missing from it.
    """
    MMLogger.get_instance('benchmark_gan_training', log_level='WARNING')  # no init log
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    if weights is not None:
        missing, unexpected = model.load_state_dict(weights, strict=False)
        own = tuple(getattr(model, 'discriminator_names', list)())
        if unexpected or not all(k.startswith(own) for k in missing):
            raise ValueError(f'weights do not fit {cfg.model.type}: missing {missing}, '
                             f'unexpected {unexpected}')
    model.to(device).train()
    # GANMaskRCNN reads the iteration here: the last one, adversarial at full weight
    MessageHub.get_current_instance().update_info_dict(
        dict(iter=cfg.train_cfg.max_iters - 1, max_iters=cfg.train_cfg.max_iters))
    return model, build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))


def build_pair(cfgs: List[Config], device: str) -> Tuple[Dict[str, tuple], dict]:
    """The baseline and the GAN model (``build_trainable``), the GAN model starting
    from the baseline's weights.

    Returns:
        tuple: ``{'baseline': (model, optim_wrapper), 'gan': (...)}`` and the
        baseline's ``state_dict`` on CPU.
    """
    baseline = build_trainable(cfgs[0], device)
    weights = {k: v.detach().cpu().clone() for k, v in baseline[0].state_dict().items()}
    return dict(baseline=baseline, gan=build_trainable(cfgs[1], device, weights)), weights


def restarts(models: Dict[str, tuple]) -> Dict[str, Callable[[int], None]]:
    """``prepare`` callbacks for ``interleaved_times``: before its step on batch i a
    model gets its first weights back and the random seed i.

    Then the work of a step depends on its batch only, not on where each model's
    own training has taken it (proposals, positives).
    """
    start = {n: copy.deepcopy(m.state_dict()) for n, (m, _) in models.items()}

    def restart(name: str, i: int) -> None:
        models[name][0].load_state_dict(start[name])
        torch.manual_seed(i)

    return {n: (lambda i, n=n: restart(n, i)) for n in models}


def load_batches(cfg: Config, split: str, count: int) -> List[dict]:
    """``count`` batches of the ``{split}_dataloader`` of ``cfg`` (cycled)."""
    loader_cfg = copy.deepcopy(cfg[f'{split}_dataloader'])
    loader_cfg.update(num_workers=0, persistent_workers=False)
    loader = Runner.build_dataloader(loader_cfg, seed=0)
    batches = []
    while len(batches) < count:
        for batch in loader:
            batches.append(batch)
            if len(batches) == count:
                break
    return batches


def interleaved_times(steps: Dict[str, Callable[[dict], None]], batches: List[dict],
                      warmup: int, sync: Callable[[], None],
                      prepare: Optional[Dict[str, Callable[[int], None]]] = None
                      ) -> Dict[str, List[float]]:
    """Seconds per call of each step on each batch, models alternating per batch.

    ``prepare[name](i)``, if given, runs untimed before step ``name`` on batch i.
    """
    times = {name: [] for name in steps}
    names = list(steps)
    for i, batch in enumerate(batches):
        for name in (names if i % 2 == 0 else names[::-1]):
            if prepare is not None:
                prepare[name](i)
            sync()
            start = time.perf_counter()
            steps[name](copy.deepcopy(batch))
            sync()
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


def _vm_kib(field: str) -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'{field} not in /proc/self/status')


def _cpu_peak_child(cfg: Config, batches: List[dict], weights: Optional[dict],
                    queue) -> None:
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')  # reset VmHWM (peak RSS) to the current RSS
    before = _vm_kib('VmRSS')
    model, optim = build_trainable(cfg, 'cpu', weights)
    for batch in batches:
        model.train_step(copy.deepcopy(batch), optim)
    queue.put((_vm_kib('VmHWM') - before) / 1024)


def peak_train_memory_mib(cfg: Config, batches: List[dict], device: str,
                          weights: Optional[dict]) -> float:
    """Peak memory (MiB) of building ``cfg``'s model and training it on ``batches``."""
    if device.startswith('cuda'):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        model, optim = build_trainable(cfg, device, weights)
        for batch in batches:
            model.train_step(copy.deepcopy(batch), optim)
        peak = torch.cuda.max_memory_allocated() - start
        del model, optim
        return peak / 2**20
    ctx = mp.get_context('spawn')
    queue = ctx.Queue()
    proc = ctx.Process(target=_cpu_peak_child, args=(cfg, batches, weights, queue))
    # glibc serves large blocks with mmap and returns them at free: peak RSS then
    # follows the live tensors instead of what the heap happened to keep
    old_env = {k: os.environ.get(k) for k in MALLOC_ENV}
    os.environ.update(MALLOC_ENV)
    try:
        proc.start()
    finally:
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k)
            else:
                os.environ[k] = v
    result = queue.get()
    proc.join()
    return result


def run(cfgs: List[Config], iters: int, warmup: int, device: str) -> List[List[str]]:
    """Measure the baseline and the GAN config; return the rows of the table."""
    if iters < 1 or warmup < 0:
        raise ValueError(f'iters must be >= 1 and warmup >= 0, got {iters}, {warmup}')
    names = ['baseline', 'gan']
    train_batches = load_batches(cfgs[0], 'train', warmup + iters)
    test_batches = load_batches(cfgs[0], 'test', warmup + iters)
    sync = torch.cuda.synchronize if device.startswith('cuda') else (lambda: None)

    models, weights = build_pair(cfgs, device)
    # both processes get (and load) the same weights: a process handed a state_dict
    # peaks about 110 MiB higher (R18-FPN) than one that only initialises its model
    memory = {n: peak_train_memory_mib(c, train_batches[:warmup + 2], device, weights)
              for n, c in zip(names, cfgs)}
    for model, _ in models.values():
        model.eval()
    with torch.no_grad():  # before training, while both still have the same weights
        infer = interleaved_times(
            {n: (lambda b, m=m: m.test_step(b)) for n, (m, _) in models.items()},
            test_batches, warmup, sync)
    for model, _ in models.values():
        model.train()
    train = interleaved_times(
        {n: (lambda b, m=m, o=o: m.train_step(b, o)) for n, (m, o) in models.items()},
        train_batches, warmup, sync, prepare=restarts(models))

    rows = []
    for label, values, unit in (('train time / iter', train, 's'),
                                ('train peak memory', memory, 'MiB'),
                                ('inference time / image', infer, 's')):
        med = {n: statistics.median(v) if isinstance(v, list) else v
               for n, v in values.items()}
        spread = {n: (f' ± {statistics.stdev(v):.3f}' if isinstance(v, list) and len(v) > 1
                      else '') for n, v in values.items()}
        fmt = '{:.3f}' if unit == 's' else '{:.0f}'
        rows.append([f'{label} ({unit})'] +
                    [fmt.format(med[n]) + spread[n] for n in names] +
                    [f"{med['gan'] / med['baseline']:.3f}"])
    for label, values in (('train', train), ('inference', infer)):
        rows.append([f'{label} time, per-batch ratio (median, quartiles)', '', '',
                     per_batch_ratio(values['gan'], values['baseline'])])
    return rows


def per_batch_ratio(gan: List[float], baseline: List[float]) -> str:
    """Median and quartiles of ``gan[i] / baseline[i]``, e.g. '1.120 (1.08-1.17)'."""
    ratios = [g / b for g, b in zip(gan, baseline)]
    if len(ratios) < 2:
        return f'{ratios[0]:.3f}'
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    return f'{statistics.median(ratios):.3f} ({q1:.2f}-{q3:.2f})'


def markdown(rows: List[List[str]]) -> str:
    return markdown_table(['metric', 'Mask R-CNN', 'GAN Mask R-CNN', 'GAN / baseline'], rows)


def add_pair_args(parser: argparse.ArgumentParser, iters: int, warmup: int) -> None:
    """The options that choose and run the two models (also used by
    ``tools/analysis_tools/profile_gan_overhead.py``)."""
    parser.add_argument('--configs', nargs=2, default=DEFAULT_CONFIGS,
                        metavar=('BASELINE', 'GAN'), help='baseline and GAN configs')
    parser.add_argument('--iters', type=int, default=iters, help='measured iterations')
    parser.add_argument('--warmup', type=int, default=warmup, help='unmeasured iterations')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='overrides of both configs, e.g. model.backbone.depth=50 '
                        'model.neck.in_channels=[256,512,1024,2048]')
    parser.add_argument('--gan-options', nargs='+', action=DictAction, default={},
                        help='overrides of the GAN config only, e.g. '
                        'model.roi_head.max_disc_rois_per_img=8')
    parser.add_argument('--size', type=int, default=256,
                        help="image size of the synthetic set generated when the configs' "
                        'data are absent')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    add_pair_args(parser, iters=20, warmup=3)
    return parser.parse_args()


def load_configs(paths: List[str], gan_options: dict, size: int, tmp: str,
                 cfg_options: Optional[dict] = None) -> List[Config]:
    """The baseline and the GAN config (``cfg_options`` merged into both,
    ``gan_options`` into the latter); when their training data are absent, both read
    a synthetic set generated in ``tmp``."""
    cfgs = [Config.fromfile(c) for c in paths]
    for cfg in cfgs:
        cfg.merge_from_dict(cfg_options or {})
    cfgs[1].merge_from_dict(gan_options)
    train_set = cfgs[0].train_dataloader.dataset
    if not osp.exists(osp.join(train_set.get('data_root', ''), train_set.ann_file)):
        print(f'{train_set.ann_file} not found in {train_set.data_root!r}: '
              f'using a generated synthetic set ({size} px)')
        for split, num in (('train', 16), ('val', 8)):
            generate_shapes(tmp, num_images=num, size=size, seed=0, split=split)
        for cfg in cfgs:
            set_data_root(cfg, tmp)
    return cfgs


def main():
    args = parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfgs = load_configs(args.configs, args.gan_options, args.size, tmp,
                            args.cfg_options)
        rows = run(cfgs, args.iters, args.warmup, args.device)
    print(f'device: {args.device}, torch threads: {torch.get_num_threads()}, '
          f'{args.iters} measured iterations after {args.warmup} warm-up ones')
    print(markdown(rows))


if __name__ == '__main__':
    main()
