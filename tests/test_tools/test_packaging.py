"""setup.cfg declares what the lab package imports: every third-party module that
``gan_mask_rcnn_lab`` imports is a requirement of the package or of its ``lab``
extra, or comes with a named requirement (so that ``pip install .[lab]`` is enough
to run ``tools/``).

Reference: the import statements of the lab's files, read with ``ast``."""
import ast
import configparser
import glob
import os.path as osp
import re
import sys

from conftest import REPO

LAB = osp.join(REPO, 'projects', 'gan_mask_rcnn', 'gan_mask_rcnn_lab')
# modules that come with a requirement of a different name
PROVIDED_BY = {'cv2': 'mmcv', 'PIL': 'matplotlib', 'filelock': 'torch',
               'gan_mask_rcnn': 'gan-mask-rcnn', 'gan_mask_rcnn_lab': 'gan-mask-rcnn'}


def _names(block):
    return {re.split(r'[<>=!~;\[ ]', line.strip())[0].lower().replace('_', '-')
            for line in block.splitlines() if line.strip()}


def _third_party_imports():
    found = set()
    for path in glob.glob(osp.join(LAB, '*.py')):
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split('.')[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                found.add(node.module.split('.')[0])
    return {name for name in found if name not in sys.stdlib_module_names}


def test_lab_imports_are_declared():
    cfg = configparser.ConfigParser()
    cfg.read(osp.join(REPO, 'setup.cfg'))
    declared = _names(cfg['options']['install_requires'])
    lab = _names(cfg['options.extras_require']['lab'])
    assert {'scipy', 'matplotlib'} <= lab
    missing = {name for name in _third_party_imports()
               if PROVIDED_BY.get(name, name).lower().replace('_', '-')
               not in declared | lab | {'gan-mask-rcnn'}}
    assert not missing, f'gan_mask_rcnn_lab imports {sorted(missing)}, not in setup.cfg'
