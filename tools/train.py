"""mmdet's ``tools/train.py``, also for multi-process training on machines without CUDA.

Same arguments as mmdet's script (``config``, ``--work-dir``, ``--amp``,
``--resume``, ``--cfg-options``, ``--launcher``), which it runs unchanged. The one
addition: MMEngine's ``init_dist`` calls ``torch.cuda.set_device``, which fails
without CUDA, so when ``torchrun`` starts this script on such a machine it opens
the process group itself with the gloo backend (the runner then skips its own
``init_dist``). With CUDA it does nothing and MMEngine uses ``env_cfg.dist_cfg``
(NCCL by default). ``--amp`` without CUDA stops at once with a message (MMEngine's
``AmpOptimWrapper`` refuses to run on a CPU). Examples::

    python tools/train.py configs/gan_mask_rcnn/gan-mask-rcnn_r18_fpn_shapes-cpu.py
    torchrun --nproc_per_node 2 tools/train.py \
        configs/gan_mask_rcnn/gan-mask-rcnn_r18_fpn_shapes-cpu.py --launcher pytorch

A GAN config needs ``model_wrapper_cfg=dict(type='GradAllReduceDataParallel')``
for multi-process training (``configs/_base_/gan_mask_rcnn.py`` sets it).
"""
import os
import os.path as osp
import runpy
import sys

import mmdet
import torch
import torch.distributed as torch_dist


def mmdet_train_script() -> str:
    """Path of mmdet's ``tools/train.py`` (pip install or source checkout)."""
    root = osp.dirname(mmdet.__file__)
    candidates = [osp.join(root, '.mim', 'tools', 'train.py'),
                  osp.join(osp.dirname(root), 'tools', 'train.py')]
    for path in candidates:
        if osp.isfile(path):
            return path
    raise FileNotFoundError(f'mmdet tools/train.py not found; looked at {candidates}')


def init_cpu_process_group() -> None:
    """Open a gloo process group when torchrun started us and CUDA is absent."""
    if ('LOCAL_RANK' in os.environ and int(os.environ.get('WORLD_SIZE', '1')) > 1
            and not torch.cuda.is_available() and not torch_dist.is_initialized()):
        torch_dist.init_process_group(backend='gloo')


def check_amp(argv) -> None:
    """Exit with a message when ``--amp`` is asked for without CUDA."""
    if '--amp' in argv and not torch.cuda.is_available():
        sys.exit('--amp needs a CUDA GPU: MMEngine\'s AmpOptimWrapper (which --amp sets as '
                 'optim_wrapper.type, for both the generator and the discriminator of a GAN '
                 'config) refuses to train on a CPU. Drop --amp to train in float32 '
                 "(optim_wrapper.type='OptimWrapper').")


def main() -> None:
    check_amp(sys.argv[1:])
    init_cpu_process_group()
    runpy.run_path(mmdet_train_script(), run_name='__main__')


if __name__ == '__main__':
    main()
