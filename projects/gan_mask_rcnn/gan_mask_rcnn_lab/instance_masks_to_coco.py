"""Convert instance masks on disk to COCO instance-segmentation json files.

Two layouts are read:

* ``'id_map'``: one PNG (or BMP, ...) per image whose pixel values are instance
  ids, 0 = background; the class of an instance comes from
  ``value_to_class[value // label_divisor]`` or is the single class.
* ``'binary'``: a folder ``<mask_dir>/<image stem>/`` per image with one binary
  mask per instance; with several classes the file is named ``<class>_<k>.png``.

Every image is kept, also one without instances. Masks become RLE, boxes are
COCO ``[x, y, w, h]`` computed from the RLE, ``iscrowd`` is 0. Images are split
by name lists or by ratios with a seed, and every written file is checked with
:func:`validate_coco`.
"""
import json
import os
import os.path as osp
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np
import pycocotools.mask as mask_utils
from PIL import Image
from mmengine.utils import ProgressBar

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')


def read_image(path: str) -> np.ndarray:
    """Read a colour image (H, W, 3); raise naming the file if unreadable."""
    img = cv2.imread(path, cv2.IMREAD_COLOR) if osp.isfile(path) else None
    if img is None:
        raise ValueError(f'cannot read image file {path!r} (missing or not an image)')
    return img


def read_mask(path: str) -> np.ndarray:
    """Read a mask with its stored values: (H, W) (palette indices, 8 or 16
    bit) or (H, W, 3) for RGB; raise naming the file if unreadable."""
    try:
        with Image.open(path) as img:
            return np.array(img)
    except (OSError, ValueError) as err:
        raise ValueError(f'cannot read mask file {path!r}: {err}') from err


def list_images(img_dir: str, exclude_suffix: str = '',
                allow_empty: bool = False) -> List[str]:
    """Sorted image file names in ``img_dir`` (not ending in ``exclude_suffix``)."""
    if not osp.isdir(img_dir):
        raise FileNotFoundError(f'img_dir {img_dir!r} is not a directory')
    names = sorted(
        f for f in os.listdir(img_dir)
        if f.lower().endswith(IMAGE_EXTENSIONS)
        and not (exclude_suffix and f.endswith(exclude_suffix)))
    if not names and not allow_empty:
        raise FileNotFoundError(f'no images ({IMAGE_EXTENSIONS}) in img_dir {img_dir!r}')
    return names


def encode_instance(mask: np.ndarray) -> Tuple[dict, List[float], float]:
    """RLE, COCO box ``[x, y, w, h]`` and area of one binary mask (H, W)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    bbox = mask_utils.toBbox(rle).tolist()
    area = float(mask_utils.area(rle))
    rle['counts'] = rle['counts'].decode()
    return rle, bbox, area


def check_size(mask: np.ndarray, mask_path: str, size: Tuple[int, int],
               img_path: str) -> None:
    """Raise naming both files if ``mask`` is not ``size`` = (H, W)."""
    if mask.shape[:2] != tuple(size):
        raise ValueError(
            f'mask {mask_path!r} is {mask.shape[1]}x{mask.shape[0]} but image '
            f'{img_path!r} is {size[1]}x{size[0]} (width x height)')


def id_map_instances(id_map: np.ndarray, classes: Sequence[str],
                     value_to_class: Optional[Mapping[int, str]] = None,
                     label_divisor: int = 1,
                     path: str = '') -> List[Tuple[str, np.ndarray]]:
    """Split an instance-id map into ``(class name, binary mask)`` pairs.

    Args:
        id_map (np.ndarray): (H, W) integer map; 0 is background.
        classes (Sequence[str]): The class names.
        value_to_class (Mapping[int, str], optional): ``value // label_divisor``
            to class name; without it every instance is ``classes[0]``.
        label_divisor (int): See ``value_to_class``. Defaults to 1.
        path (str): The map's file, named in errors.

    Returns:
        list[tuple[str, np.ndarray]]: One pair per non-zero value, ascending.
    """
    if id_map.ndim == 3:  # colour-coded ids: one int per RGB triple
        id_map = id_map.astype(np.int64)
        id_map = id_map[..., 0] + 256 * id_map[..., 1] + 65536 * id_map[..., 2]
    instances = []
    for value in np.unique(id_map):
        if value == 0:
            continue
        if value_to_class is None:
            name = classes[0]
        else:
            key = int(value) // label_divisor
            if key not in value_to_class:
                raise ValueError(f'{path!r}: value {value} (class key {key}) is '
                                 f'not in value_to_class {dict(value_to_class)}')
            name = value_to_class[key]
        instances.append((name, id_map == value))
    return instances


def binary_instances(folder: str, classes: Sequence[str], size: Tuple[int, int],
                     img_path: str) -> List[Tuple[str, np.ndarray]]:
    """Read ``folder/*`` (one binary mask (H, W) each, non-zero = instance) as
    ``(class, mask)`` pairs; no folder means no instances."""
    instances = []
    for name in list_images(folder, allow_empty=True) if osp.isdir(folder) else []:
        path = osp.join(folder, name)
        cls = classes[0] if len(classes) == 1 else name.rsplit('_', 1)[0]
        if cls not in classes:
            raise ValueError(f'{path!r}: class {cls!r} from the file name is not '
                             f'one of {list(classes)}')
        mask = read_mask(path)
        check_size(mask, path, size, img_path)
        instances.append((cls, (mask.reshape(*mask.shape[:2], -1) > 0).any(-1)))
    return instances


def masks_to_coco(img_dir: str, mask_dir: str, file_names: Sequence[str],
                  classes: Sequence[str], layout: str = 'id_map',
                  mask_suffix: str = '.png',
                  value_to_class: Optional[Mapping[int, str]] = None,
                  label_divisor: int = 1, min_area: int = 0,
                  progress: bool = True) -> dict:
    """Build one COCO dict for ``file_names`` (relative to ``img_dir``).

    Args:
        img_dir (str): Folder of the images.
        mask_dir (str): Folder of the masks.
        file_names (Sequence[str]): Image file names, in order.
        classes (Sequence[str]): Class names; category ids are 1, 2, ...
        layout (str): ``'id_map'`` (mask ``<stem><mask_suffix>``) or
            ``'binary'`` (folder ``<stem>/``).
        mask_suffix (str): See ``layout``.
        value_to_class (Mapping[int, str], optional): See
            :func:`id_map_instances`.
        label_divisor (int): See :func:`id_map_instances`.
        min_area (int): Drop instances smaller than this (pixels).
        progress (bool): Show a progress bar.

    Returns:
        dict: COCO json with ``images``, ``annotations``, ``categories``.
    """
    if layout not in ('id_map', 'binary'):
        raise ValueError(f"layout must be 'id_map' or 'binary', got {layout!r}")
    cat_ids = {name: i + 1 for i, name in enumerate(classes)}
    images, annotations = [], []
    bar = ProgressBar(len(file_names)) if progress and file_names else None
    for img_id, file_name in enumerate(file_names, 1):
        img_path = osp.join(img_dir, file_name)
        height, width = read_image(img_path).shape[:2]
        stem = osp.splitext(file_name)[0]
        if layout == 'id_map':
            mask_path = osp.join(mask_dir, stem + mask_suffix)
            id_map = read_mask(mask_path)
            check_size(id_map, mask_path, (height, width), img_path)
            instances = id_map_instances(id_map, classes, value_to_class,
                                         label_divisor, mask_path)
        else:
            mask_path = osp.join(mask_dir, stem)
            instances = binary_instances(mask_path, classes, (height, width), img_path)
        images.append(dict(id=img_id, file_name=file_name, width=width, height=height))
        for cls, mask in instances:
            rle, bbox, area = encode_instance(mask)
            if area < max(min_area, 1):
                continue
            annotations.append(dict(
                id=len(annotations) + 1, image_id=img_id, category_id=cat_ids[cls],
                segmentation=rle, bbox=bbox, area=area, iscrowd=0))
        if bar is not None:
            bar.update()
    return dict(images=images, annotations=annotations,
                categories=[dict(id=i, name=n) for n, i in cat_ids.items()])


def split_names(names: Sequence[str],
                split_lists: Optional[Mapping[str, Sequence[str]]] = None,
                split_ratios: Optional[Mapping[str, float]] = None,
                seed: int = 0) -> Dict[str, List[str]]:
    """Assign image names to splits by name lists or by ratios.

    Args:
        names (Sequence[str]): All image file names.
        split_lists (Mapping[str, Sequence[str]], optional): Split -> names
            (file names or stems).
        split_ratios (Mapping[str, float], optional): Split -> fraction; they
            must sum to 1. Names are shuffled with ``seed`` first.
        seed (int): Seed of the shuffle.

    Returns:
        dict[str, list[str]]: Split -> file names. With neither argument, one
        split ``'all'``.
    """
    if split_lists is not None and split_ratios is not None:
        raise ValueError('give split_lists or split_ratios, not both')
    if split_lists is not None:
        by_stem = {osp.splitext(n)[0]: n for n in names}
        out = {}
        for split, wanted in split_lists.items():
            missing = [w for w in wanted if w not in by_stem and w not in names]
            if missing:
                raise ValueError(f'split {split!r} lists images that do not exist: '
                                 f'{missing[:5]}')
            out[split] = [by_stem.get(w, w) for w in wanted]
        return out
    if split_ratios is None:
        return {'all': list(names)}
    ratios = np.asarray(list(split_ratios.values()), dtype=float)
    if (ratios < 0).any() or not np.isclose(ratios.sum(), 1.0):
        raise ValueError(f'split_ratios must be >= 0 and sum to 1, got {dict(split_ratios)}')
    order = np.random.default_rng(seed).permutation(len(names))
    bounds = np.round(np.cumsum(ratios) * len(names)).astype(int)
    starts = np.concatenate([[0], bounds[:-1]])
    return {split: sorted(names[i] for i in order[a:b])
            for split, a, b in zip(split_ratios, starts, bounds)}


def validate_coco(ann_file: str, img_dir: str) -> None:
    """Check a written file: pycocotools loads it, every image file exists,
    every box agrees with its mask.

    Raises:
        ValueError: Naming the first bad image or annotation.
    """
    from pycocotools.coco import COCO
    coco = COCO(ann_file)
    for img in coco.dataset['images']:
        if not osp.isfile(osp.join(img_dir, img['file_name'])):
            raise ValueError(f'{ann_file}: image file {img["file_name"]!r} not in {img_dir!r}')
    for ann in coco.dataset['annotations']:
        box = mask_utils.toBbox(coco.annToRLE(ann))
        if not np.allclose(box, ann['bbox']):
            raise ValueError(f'{ann_file}: annotation {ann["id"]} box {ann["bbox"]} '
                             f'does not match its mask box {box.tolist()}')


def convert_instance_masks(img_dir: str, mask_dir: str, out_dir: str,
                           classes: Sequence[str], file_names: Optional[Sequence[str]] = None,
                           split_lists: Optional[Mapping[str, Sequence[str]]] = None,
                           split_ratios: Optional[Mapping[str, float]] = None,
                           seed: int = 0, **kwargs) -> Dict[str, str]:
    """Convert a folder of images and masks into ``<out_dir>/<split>.json``.

    Args:
        img_dir, mask_dir (str): Folders of images and of masks.
        out_dir (str): Where the json files go.
        classes (Sequence[str]): Class names.
        file_names (Sequence[str], optional): Images to use; default all in
            ``img_dir`` except files ending in ``mask_suffix``.
        split_lists, split_ratios, seed: See :func:`split_names`.
        **kwargs: ``layout``, ``mask_suffix``, ``value_to_class``,
            ``label_divisor``, ``min_area``, ``progress`` of
            :func:`masks_to_coco`.

    Returns:
        dict[str, str]: Split -> written json path.
    """
    if not classes:
        raise ValueError('classes must name at least one class, got an empty list')
    if file_names is None:
        suffix = kwargs.get('mask_suffix', '.png') if img_dir == mask_dir else ''
        file_names = list_images(img_dir, exclude_suffix=suffix)
    os.makedirs(out_dir, exist_ok=True)
    written = {}
    for split, names in split_names(file_names, split_lists, split_ratios, seed).items():
        coco = masks_to_coco(img_dir, mask_dir, names, classes, **kwargs)
        written[split] = osp.join(out_dir, f'{split}.json')
        with open(written[split], 'w') as f:
            json.dump(coco, f)
        validate_coco(written[split], img_dir)
    return written

