"""Multi-process training on CPU (gloo) with GradAllReduceDataParallel.

1. The wrapper's arithmetic, in two spawned processes on a toy model: gradients are
   averaged before clipping, a gradient missing on one rank counts as zero, one
   missing on every rank stays missing, rank 0's weights are copied to all ranks at
   the first step.
   Expected values are worked out by hand from the SGD update rule.
2. ``torchrun --nproc_per_node 2 tools/train.py <tiny GAN config> --launcher
   pytorch`` for a few adversarial iterations, rank 1 starting from shifted
   weights (tests/dist_weights_hook.py): both ranks end with identical generator
   and discriminator weights, which did change during training.
"""
import os.path as osp

import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
from conftest import torchrun_train
from mmengine.optim import OptimWrapper, OptimWrapperDict
from torch import nn

from gan_mask_rcnn import GradAllReduceDataParallel

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
GAN_CPU = osp.join(REPO, 'configs', 'gan_mask_rcnn', 'gan-mask-rcnn_r18_fpn_shapes-cpu.py')
LR, WD, MAX_NORM = 0.1, 0.1, 0.01


class ToyGAN(nn.Module):
    """Generator params g1 (3,), g2 (2,), unused (1,); discriminator param d (1,)."""

    def __init__(self, fill: float) -> None:
        super().__init__()
        self.g1 = nn.Parameter(torch.full((3, ), fill))
        self.g2 = nn.Parameter(torch.full((2, ), fill))
        self.unused = nn.Parameter(torch.full((1, ), fill))
        self.d = nn.Parameter(torch.full((1, ), fill))

    def train_step(self, data, optim_wrapper):
        x = data['x']
        # grad g1 = x on every rank; grad g2 = 1 on rank 0 only; `unused` never.
        loss_g = (self.g1 * x).sum() + (self.g2.sum() if data['rank'] == 0 else 0)
        optim_wrapper['generator'].update_params(loss_g)
        optim_wrapper['discriminator'].update_params((self.d * x).sum())
        return dict(loss_g=loss_g.detach())


def _toy_worker(rank: int, world_size: int, rdzv: str, out_dir: str) -> None:
    torch_dist.init_process_group('gloo', init_method=f'file://{rdzv}', rank=rank,
                                  world_size=world_size)
    model = GradAllReduceDataParallel(ToyGAN(fill=1.0 + rank))  # rank 0's 1.0 wins
    gen = OptimWrapper(
        torch.optim.SGD([model.module.g1, model.module.g2, model.module.unused], lr=LR,
                        weight_decay=WD), clip_grad=dict(max_norm=MAX_NORM))
    disc = OptimWrapper(torch.optim.SGD([model.module.d], lr=LR))
    wrappers = OptimWrapperDict(generator=gen, discriminator=disc)
    model.train_step(dict(x=torch.tensor(rank + 1.0), rank=rank), wrappers)
    result = {k: v.detach().clone() for k, v in model.module.named_parameters()}
    result['step_restored'] = torch.tensor('step' not in vars(gen) and 'step' not in vars(disc))
    torch.save(result, osp.join(out_dir, f'toy{rank}.pth'))
    torch_dist.destroy_process_group()


def test_grad_all_reduce_arithmetic(tmp_path):
    mp.spawn(_toy_worker, args=(2, str(tmp_path / 'rdzv'), str(tmp_path)), nprocs=2)
    results = [torch.load(tmp_path / f'toy{r}.pth') for r in range(2)]
    # Mean gradients over ranks with x = 1, 2: g1 -> 1.5 each, g2 -> (1 + 0) / 2 = 0.5.
    g1, g2 = torch.full((3, ), 1.5), torch.full((2, ), 0.5)
    norm = torch.cat([g1, g2]).norm()  # clipped after averaging (sqrt(7.25))
    coef = MAX_NORM / (norm + 1e-6)
    w0 = 1.0  # rank 0's initial value, broadcast to rank 1
    expected = dict(
        g1=w0 - LR * (g1 * coef + WD * w0),
        g2=w0 - LR * (g2 * coef + WD * w0),
        unused=torch.full((1, ), w0),  # no gradient anywhere: SGD skips it, no decay
        d=torch.full((1, ), w0 - LR * 1.5))
    for rank, result in enumerate(results):
        assert bool(result['step_restored']), f'rank {rank}: step not restored'
        for name, value in expected.items():
            torch.testing.assert_close(result[name], value, msg=f'rank {rank}: {name}')


def test_bad_bucket_size():
    with pytest.raises(ValueError, match='bucket_size_mb must be positive, got 0'):
        GradAllReduceDataParallel(ToyGAN(0.0), bucket_size_mb=0)


def test_torchrun_two_cpu_ranks_identical(shapes_root, tiny_cfg_factory, tmp_path):
    work_dir = str(tmp_path / 'work')
    cfg = tiny_cfg_factory(GAN_CPU, shapes_root, work_dir, max_iters=3)
    cfg.model.update(adv_start_fraction=0, adv_ramp_fraction=0)  # D steps from it 0
    cfg.model_wrapper_cfg = dict(type='GradAllReduceDataParallel')
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None  # no validation
    torchrun_train(cfg, 'dist_weights_hook', 'DumpRankWeightsHook',
                   str(tmp_path / 'tiny_gan_dist.py'))

    ranks = [torch.load(osp.join(work_dir, f'rank{r}.pth')) for r in range(2)]
    assert [r['wrapper'] for r in ranks] == ['GradAllReduceDataParallel'] * 2
    p0, p1 = ranks[0]['final'], ranks[1]['final']
    assert p0.keys() == p1.keys()
    for name in p0:
        torch.testing.assert_close(p0[name], p1[name], rtol=0, atol=0, msg=name)
    init = ranks[0]['init']
    assert not torch.equal(init['backbone.conv1.weight'], ranks[1]['init']['backbone.conv1.weight'])
    changed = {n for n in p0 if not torch.equal(p0[n], init[n])}
    assert any('discriminator' in n for n in changed), 'discriminators did not train'
    assert any(n.startswith('roi_head.mask_head') for n in changed), 'generator did not train'

