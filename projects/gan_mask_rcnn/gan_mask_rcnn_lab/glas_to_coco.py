"""Convert the original GlaS release (MICCAI 2015 gland segmentation) to COCO.

The release folder holds ``{train,testA,testB}_<k>.bmp`` images beside
``*_anno.bmp`` instance labels (0 = background, one value per gland); they go
through :func:`convert_instance_masks` with the splits of the challenge.
"""
from typing import Dict

from .instance_masks_to_coco import convert_instance_masks, list_images


def convert_glas(glas_dir: str, out_dir: str, min_area: int = 0,
                 progress: bool = True) -> Dict[str, str]:
    """Write COCO json files for the GlaS release folder ``glas_dir``.

    Writes ``train``, ``testA``, ``testB`` and ``test`` (= testA + testB)
    json files with one class ``gland``; file names are relative to
    ``glas_dir``.

    Returns:
        dict[str, str]: Split -> written json path.
    """
    names = list_images(glas_dir, exclude_suffix='_anno.bmp')
    splits = {s: [n for n in names if n.startswith(s + '_')]
              for s in ('train', 'testA', 'testB')}
    if not any(splits.values()):
        raise FileNotFoundError(f'no train_*/testA_*/testB_* images in glas_dir {glas_dir!r}')
    splits['test'] = splits['testA'] + splits['testB']
    return convert_instance_masks(
        glas_dir, glas_dir, out_dir, classes=('gland', ), split_lists=splits,
        layout='id_map', mask_suffix='_anno.bmp', min_area=min_area,
        progress=progress)
