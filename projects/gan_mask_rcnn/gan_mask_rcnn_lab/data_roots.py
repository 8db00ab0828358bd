"""Where the tools and tests look for a data set that is not generated here.

The configs use mmdet's layout (``data/glas_cc/``, ``data/coco/``,
``data/cityscapes/``). GlaS-cc is often kept elsewhere: the environment variable
``GLAS_CC_ROOT`` names its folder (``images/``, ``annotations/{train,test}.json``)
for ``tools/run_experiment.py --dataset glas`` and the tests; a tool's
``--data-root`` overrides both.
"""
import os
import os.path as osp

GLAS_CC_ENV = 'GLAS_CC_ROOT'


def glas_cc_root(repo: str) -> str:
    """The GlaS-cc folder: ``$GLAS_CC_ROOT`` if set, else ``<repo>/data/glas_cc``.

    Args:
        repo (str): The repository root.

    Returns:
        str: An absolute path (it may not exist).
    """
    return osp.abspath(os.environ.get(GLAS_CC_ENV) or osp.join(repo, 'data', 'glas_cc'))


def glas_cc_missing(root: str) -> str:
    """Why ``root`` is not a GlaS-cc folder, naming the ways to point at one; '' if it is."""
    ann = osp.join(root, 'annotations', 'train.json')
    if osp.isfile(ann) and osp.isdir(osp.join(root, 'images')):
        return ''
    return (f'GlaS-cc not found at {root} (no images/ or {ann}): set {GLAS_CC_ENV}=<folder>, '
            'pass --data-root <folder>, or link the folder to data/glas_cc')
