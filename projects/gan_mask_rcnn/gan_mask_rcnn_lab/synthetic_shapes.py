"""Deterministic synthetic instance-segmentation set ("shapes") in COCO format.

Shapes whose outline matters for mask quality (ellipses, convex polygons, concave
stars and gears) are painted with their own texture onto a textured background,
may overlap and occlude each other, and the image gets noise and blur. The same
``seed`` always writes the same files. Used by the demo, the tests and the CPU
experiments, so that nothing has to be downloaded.
"""
import json
import os
import os.path as osp
from typing import Dict, List, Sequence

import cv2
import numpy as np
import pycocotools.mask as mask_utils
from filelock import FileLock

from gan_mask_rcnn.datasets import SHAPE_CLASSES

# The set that `make data`, `make demo` and tools/run_experiment.py write: image side
# and the image counts of its splits.
DEFAULT_SIZE = 192
DEFAULT_NUM_TRAIN = 128
DEFAULT_NUM_VAL = 32


def _smooth_field(rng: np.random.Generator, size: int, scale: int) -> np.ndarray:
    """Low-frequency noise in [0, 1] of shape (size, size)."""
    coarse = rng.random((max(2, size // scale), max(2, size // scale)))
    field = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    field -= field.min()
    return field / max(field.max(), 1e-6)


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A colored texture (size, size, 3) in [0, 255]: stripes plus blotches."""
    color = rng.uniform(40, 215, size=3)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    theta = rng.uniform(0, np.pi)
    period = rng.uniform(4, 14)
    stripes = np.sin((xx * np.cos(theta) + yy * np.sin(theta)) * 2 * np.pi / period)
    blotch = _smooth_field(rng, size, int(rng.integers(8, 32))) - 0.5
    amp = rng.uniform(10, 35)
    tex = color[None, None] + amp * stripes[..., None] + 60 * blotch[..., None]
    return np.clip(tex, 0, 255)


def _outline(rng: np.random.Generator, cls: str, cx: float, cy: float,
             radius: float) -> np.ndarray:
    """Polygon vertices (N, 2) in pixels for one shape of class ``cls``."""
    rot = rng.uniform(0, 2 * np.pi)
    if cls == 'ellipse':
        t = np.linspace(0, 2 * np.pi, 72, endpoint=False)
        ax, ay = radius, radius * rng.uniform(0.45, 0.9)
        pts = np.stack([ax * np.cos(t), ay * np.sin(t)], 1)
    elif cls == 'polygon':
        n = int(rng.integers(3, 8))
        t = np.sort(rng.uniform(0, 2 * np.pi, n))
        pts = np.stack([np.cos(t), np.sin(t)], 1) * radius
        pts = cv2.convexHull(pts.astype(np.float32)).reshape(-1, 2)
    elif cls == 'star':
        n = int(rng.integers(4, 8))
        t = np.linspace(0, 2 * np.pi, 2 * n, endpoint=False)
        inner = rng.uniform(0.35, 0.6)
        r = np.where(np.arange(2 * n) % 2 == 0, 1.0, inner) * radius
        pts = np.stack([r * np.cos(t), r * np.sin(t)], 1)
    elif cls == 'gear':
        teeth = int(rng.integers(6, 12))
        t = np.linspace(0, 2 * np.pi, teeth * 8, endpoint=False)
        square = (np.sin(t * teeth) > 0).astype(np.float64)
        r = radius * (0.78 + 0.22 * square)
        pts = np.stack([r * np.cos(t), r * np.sin(t)], 1)
    else:
        raise ValueError(f'unknown shape class {cls!r}; expected one of {SHAPE_CLASSES}')
    c, s = np.cos(rot), np.sin(rot)
    pts = pts @ np.array([[c, s], [-s, c]])
    return pts + np.array([cx, cy])


def render_image(rng: np.random.Generator, size: int, classes: Sequence[str],
                 max_instances: int):
    """Render one image and its visible instance masks.

    Returns:
        tuple: image (size, size, 3) uint8 BGR, masks (M, size, size) bool,
        labels (M,) int indices into ``classes``.
    """
    img = _texture(rng, size) * 0.6 + 50 * _smooth_field(rng, size, 16)[..., None]
    n = int(rng.integers(1, max_instances + 1))
    masks: List[np.ndarray] = []
    labels: List[int] = []
    for _ in range(n):
        label = int(rng.integers(len(classes)))
        radius = rng.uniform(0.08, 0.22) * size
        cx, cy = rng.uniform(radius * 0.6, size - radius * 0.6, 2)
        pts = _outline(rng, classes[label], cx, cy, radius)
        canvas = np.zeros((size, size), np.uint8)
        cv2.fillPoly(canvas, [np.round(pts * 16).astype(np.int32)], 1,
                     lineType=cv2.LINE_8, shift=4)
        shape = canvas.astype(bool)
        img[shape] = _texture(rng, size)[shape]
        for m in masks:  # later shapes occlude earlier ones
            m &= ~shape
        masks.append(shape)
        labels.append(label)
    img += rng.normal(0, rng.uniform(3, 10), img.shape)
    k = int(rng.choice([1, 3, 5]))
    img = cv2.GaussianBlur(np.clip(img, 0, 255).astype(np.uint8), (k, k), 0)
    keep = [i for i, m in enumerate(masks) if m.sum() >= 0.25 * np.pi * (0.08 * size) ** 2]
    return (img, np.array([masks[i] for i in keep], bool).reshape(-1, size, size),
            np.array([labels[i] for i in keep], np.int64))


def set_description(seed: int, size: int) -> str:
    """The ``info.description`` of a generated set, e.g. ``synthetic shapes, seed 0,
    size 192``: what tells two sets apart besides their image counts."""
    return f'synthetic shapes, seed {seed}, size {size}'


def generate_shapes(out_dir: str, num_images: int = 64, size: int = DEFAULT_SIZE,
                    seed: int = 0, split: str = 'train', num_classes: int = 4,
                    max_instances: int = 6) -> Dict:
    """Write ``<out_dir>/<split>/*.png`` and ``<out_dir>/annotations/<split>.json``.

    Args:
        out_dir (str): Dataset root.
        num_images (int): Number of images in this split.
        size (int): Image side in pixels (images are square).
        seed (int): Random seed; the split name is mixed in so that splits differ.
        split (str): Split name, e.g. ``'train'`` or ``'val'``.
        num_classes (int): Use the first 2-4 of :data:`SHAPE_CLASSES`.
        max_instances (int): Upper bound of shapes painted per image.

    Returns:
        dict: The COCO annotation dict that was written.
    """
    if not 2 <= num_classes <= len(SHAPE_CLASSES):
        raise ValueError(f'num_classes must be in [2, {len(SHAPE_CLASSES)}], got {num_classes}')
    if num_images < 1 or size < 32:
        raise ValueError(f'need num_images >= 1 and size >= 32, got {num_images}, {size}')
    classes = SHAPE_CLASSES[:num_classes]
    split_key = sum(ord(ch) * 131 ** i for i, ch in enumerate(split)) % (2**31)
    rng = np.random.default_rng([seed, split_key])
    os.makedirs(osp.join(out_dir, split), exist_ok=True)
    os.makedirs(osp.join(out_dir, 'annotations'), exist_ok=True)
    images, annotations = [], []
    for idx in range(num_images):
        img, masks, labels = render_image(rng, size, classes, max_instances)
        file_name = f'{split}/{idx:05d}.png'
        cv2.imwrite(osp.join(out_dir, file_name), img)
        images.append(dict(id=idx + 1, file_name=file_name, width=size, height=size))
        for mask, label in zip(masks, labels):
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            bbox = mask_utils.toBbox(rle).tolist()
            rle['counts'] = rle['counts'].decode('ascii')
            annotations.append(dict(
                id=len(annotations) + 1, image_id=idx + 1, category_id=int(label) + 1,
                segmentation=rle, area=float(mask.sum()), bbox=bbox, iscrowd=0))
    coco = dict(
        info=dict(description=set_description(seed, size)),
        images=images, annotations=annotations,
        categories=[dict(id=i + 1, name=name) for i, name in enumerate(classes)])
    with open(osp.join(out_dir, 'annotations', f'{split}.json'), 'w') as f:
        json.dump(coco, f)
    return coco


def generate_splits(out_dir: str, num_train: int = DEFAULT_NUM_TRAIN,
                    num_val: int = DEFAULT_NUM_VAL, size: int = DEFAULT_SIZE,
                    seed: int = 0, **kwargs) -> Dict[str, Dict]:
    """Write the ``train`` and ``val`` splits (see :func:`generate_shapes`)."""
    return {split: generate_shapes(out_dir, num, size, seed, split, **kwargs)
            for split, num in (('train', num_train), ('val', num_val))}


def ensure_splits(root: str, last_file: str) -> None:
    """Generate the default splits under ``root`` unless ``last_file`` (relative to
    it, written last) is there; under a file lock, so that processes that all find
    it missing (the two of a paired seed) generate it once."""
    os.makedirs(osp.dirname(osp.abspath(root)), exist_ok=True)
    with FileLock(root + '.lock'):
        if not osp.exists(osp.join(root, last_file)):
            generate_splits(root)
