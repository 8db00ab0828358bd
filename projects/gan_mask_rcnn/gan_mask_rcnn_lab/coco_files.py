"""COCO annotation files of an experiment: the class list, a held-out split and
a one-line description (``tools/run_experiment.py``)."""
import json
import os.path as osp
from typing import Optional, Sequence, Tuple

import numpy as np

from .run_records import write_atomic


def own_classes(train_ann: str, classes: Optional[Sequence[str]]) -> Tuple[str, ...]:
    """``classes``, or every category of ``train_ann`` in id order when None.

    Raises:
        SystemExit: If the file is missing, or names none of ``classes``' spellings.
    """
    if not osp.exists(train_ann):
        raise SystemExit(f'--train-ann: {train_ann} not found')
    with open(train_ann) as f:
        cats = [c['name'] for c in sorted(json.load(f)['categories'], key=lambda c: c['id'])]
    unknown = [c for c in classes or () if c not in cats]
    if unknown:
        raise SystemExit(f'--classes {unknown} are not categories of {train_ann}, which '
                         f'has {cats}')
    return tuple(classes or cats)


def carve_val(root: str, train_ann: str, fraction: float, out_dir: str) -> Tuple[str, str]:
    """Split the training annotations into train/val files (seed 0, by image);
    returns their paths (``<out_dir>/{train,val}_split.json``)."""
    with open(osp.join(root, train_ann)) as f:
        coco = json.load(f)
    ids = sorted(img['id'] for img in coco['images'])
    rng = np.random.default_rng(0)
    val_ids = set(rng.choice(ids, max(1, round(fraction * len(ids))), replace=False).tolist())
    paths = {}
    for name, keep in (('train', lambda i: i not in val_ids), ('val', lambda i: i in val_ids)):
        part = dict(coco, images=[im for im in coco['images'] if keep(im['id'])],
                    annotations=[a for a in coco['annotations'] if keep(a['image_id'])])
        paths[name] = osp.join(out_dir, f'{name}_split.json')
        write_atomic(paths[name], json.dumps(part))
    return paths['train'], paths['val']


def describe_data(data_root: str, train_ann: str, test_ann: str) -> str:
    """Image counts and sizes of the annotations trained and evaluated on, e.g.
    for the shapes set, which other commands may have generated at another size."""
    parts = []
    for split, ann in (('train', train_ann), ('evaluated', test_ann)):
        with open(osp.join(data_root, ann)) as f:
            images = json.load(f)['images']
        sizes = sorted({f"{im['width']}x{im['height']}" for im in images})
        parts.append(f'{split} {len(images)} images, '
                     + (sizes[0] if len(sizes) == 1 else f'{len(sizes)} sizes'))
    return '; '.join(parts)
