"""Write the synthetic shapes set (COCO instance segmentation) to a folder.

Example::

    python tools/generate_shapes.py --out data/shapes --num-train 128 --num-val 32
"""
import argparse
import time

from gan_mask_rcnn_lab.synthetic_shapes import (DEFAULT_NUM_TRAIN, DEFAULT_NUM_VAL, DEFAULT_SIZE,
                                                SHAPE_CLASSES, generate_splits)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='data/shapes', help='output folder')
    parser.add_argument('--num-train', type=int, default=DEFAULT_NUM_TRAIN, help='train images')
    parser.add_argument('--num-val', type=int, default=DEFAULT_NUM_VAL, help='val images')
    parser.add_argument('--size', type=int, default=DEFAULT_SIZE, help='image side (px)')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    parser.add_argument('--num-classes', type=int, default=len(SHAPE_CLASSES),
                        help=f'first N of {SHAPE_CLASSES}')
    parser.add_argument('--max-instances', type=int, default=6, help='per image')
    return parser.parse_args()


def main():
    args = parse_args()
    start = time.time()
    splits = generate_splits(args.out, args.num_train, args.num_val, args.size, args.seed,
                             num_classes=args.num_classes, max_instances=args.max_instances)
    for split, coco in splits.items():
        print(f'{split}: {len(coco["images"])} images, '
              f'{len(coco["annotations"])} instances -> {args.out}/annotations/{split}.json')
    print(f'done in {time.time() - start:.1f}s')


if __name__ == '__main__':
    main()
