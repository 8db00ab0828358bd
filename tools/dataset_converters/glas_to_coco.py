"""Convert the original GlaS release (``*_anno.bmp`` instance labels) to COCO.

Example::

    python tools/dataset_converters/glas_to_coco.py \
        "Warwick QU Dataset (Released 2016_07_08)" data/glas/annotations

writes train.json, testA.json, testB.json and test.json (testA + testB) whose
``file_name`` s are relative to the release folder (use it as the image prefix).
"""
import argparse

from gan_mask_rcnn_lab.glas_to_coco import convert_glas


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('glas_dir',
                        help='the GlaS release folder (train_1.bmp, train_1_anno.bmp, ...)')
    parser.add_argument('out_dir', help='where the json files are written')
    parser.add_argument('--min-area', type=int, default=0, help='drop smaller glands (px)')
    parser.add_argument('--no-progress', action='store_true')
    args = parser.parse_args()
    written = convert_glas(args.glas_dir, args.out_dir, args.min_area,
                           progress=not args.no_progress)
    for split, path in written.items():
        print(f'{split}: {path}')


if __name__ == '__main__':
    main()
