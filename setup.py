"""Builds the PrRoIPool extension ``gan_mask_rcnn.ops._C``.

Metadata lives in setup.cfg. A ``CUDAExtension`` (CPU + CUDA kernels) is built when
torch was built with CUDA and a toolkit is found (or ``FORCE_CUDA=1``); otherwise a
``CppExtension`` with the CPU kernel only, so a machine without a GPU still installs.
``GMR_PTXAS_VERBOSE=1`` makes ptxas print each CUDA kernel's registers and spills.
"""
import glob
import os
import os.path as osp

from setuptools import setup
from torch.utils.cpp_extension import (CUDA_HOME, BuildExtension, CppExtension,
                                       CUDAExtension)
import torch

CSRC = osp.join('projects', 'gan_mask_rcnn', 'gan_mask_rcnn', 'ops', 'csrc')


def make_extension():
    # torchvision's layout: one schema file per op, its kernels in cpu/, cuda/
    # and autocast/ as <op>_kernel.{cpp,cu}
    sources = sorted(glob.glob(osp.join(CSRC, '*.cpp')) +
                     glob.glob(osp.join(CSRC, 'cpu', '*.cpp')) +
                     glob.glob(osp.join(CSRC, 'autocast', '*.cpp')))
    if not sources:
        return []
    include_dirs = [osp.abspath(osp.join(CSRC, 'common'))]
    # at::parallel_for runs serially unless the extension is built with OpenMP
    # (it then shares torch's own libgomp).
    cxx_flags = ['-O3', '-std=c++17', '-fopenmp']
    link_flags = ['-fopenmp']
    with_cuda = (torch.version.cuda is not None and CUDA_HOME is not None) \
        or os.getenv('FORCE_CUDA', '0') == '1'
    if with_cuda:
        sources += sorted(glob.glob(osp.join(CSRC, 'cuda', '*.cu')))
        nvcc_flags = ['-O3', '-std=c++17']
        if os.getenv('GMR_PTXAS_VERBOSE', '0') == '1':
            nvcc_flags.append('-Xptxas=-v')
        return [CUDAExtension(
            'gan_mask_rcnn.ops._C', sources, include_dirs=include_dirs,
            define_macros=[('WITH_CUDA', None)], extra_link_args=link_flags,
            extra_compile_args={'cxx': cxx_flags, 'nvcc': nvcc_flags})]
    return [CppExtension(
        'gan_mask_rcnn.ops._C', sources, include_dirs=include_dirs,
        extra_compile_args={'cxx': cxx_flags})]


setup(ext_modules=make_extension(),
      cmdclass={'build_ext': BuildExtension.with_options(use_ninja=True)})
