"""An ``IterBasedTrainLoop`` whose random state depends on the iteration only.

MMEngine's checkpoints do not hold the random generators' state, so a resumed run
draws other RPN/RoI samples and augmentations than the uninterrupted run from its
resume point on: both are valid trainings, but not the same one. With
``reseed_every_iter`` the loop reseeds Python, NumPy and torch from (seed,
iteration) before fetching each batch, so "N iterations" and "N/2, stop, resume,
N/2" are equal tensor for tensor on a CPU (``num_workers=0``; shown there by the
tests). On CUDA, atomic adds (RoI pooling backward, among others) sum in an order
that varies from run to run, so the two agree to rounding only. It serves plain and
GAN models alike (``GANMaskRCNN`` reads its schedule from the MessageHub, not from
the loop): ``train_cfg = dict(type='ReseedIterBasedTrainLoop', reseed_every_iter=True)``
on both sides of a paired experiment.
"""
from typing import Iterator, Sequence

from mmengine.registry import LOOPS
from mmengine.runner import IterBasedTrainLoop
from mmengine.runner.utils import set_random_seed


class _ReseedingIterator:
    """Reseed Python, NumPy and torch from (seed, loop.iter) before each batch."""

    def __init__(self, iterator: Iterator, loop: IterBasedTrainLoop, seed: int,
                 diff_rank_seed: bool) -> None:
        self._iterator = iterator
        self._loop = loop
        self._seed = seed
        self._diff_rank_seed = diff_rank_seed

    def __iter__(self):
        return self

    def __next__(self) -> Sequence[dict]:
        set_random_seed((self._seed + self._loop.iter) % 2**31,
                        diff_rank_seed=self._diff_rank_seed)
        return next(self._iterator)


@LOOPS.register_module()
class ReseedIterBasedTrainLoop(IterBasedTrainLoop):
    """``IterBasedTrainLoop`` that can reseed before every batch.

    Args:
        runner (Runner): The runner; its ``randomness.seed`` is the base seed.
        dataloader (DataLoader or dict): Training dataloader.
        max_iters (int): Total training iterations.
        reseed_every_iter (bool): Reseed the random generators from (seed,
            iteration) before fetching each batch, for bit-exact resume with
            ``num_workers=0``. Defaults to False (``IterBasedTrainLoop``).
        **kwargs: ``val_begin``, ``val_interval``, ``dynamic_intervals`` of
            ``IterBasedTrainLoop``.
    """

    def __init__(self, runner, dataloader, max_iters: int,
                 reseed_every_iter: bool = False, **kwargs) -> None:
        super().__init__(runner, dataloader, max_iters, **kwargs)
        if reseed_every_iter:
            self.dataloader_iterator = _ReseedingIterator(
                self.dataloader_iterator, self, runner.seed,
                runner._randomness_cfg.get('diff_rank_seed', False))
