"""Convert a folder of images and instance masks to COCO json.

Examples::

    # instance-id PNGs <masks>/<stem>.png, one class, 80/20 split
    python tools/dataset_converters/instance_masks_to_coco.py images masks out \
        --classes cell --ratios train=0.8 val=0.2 --seed 0
    # ids = class * 1000 + k, classes from the id
    python tools/dataset_converters/instance_masks_to_coco.py images masks out \
        --classes car person --value-to-class 1=car 2=person --label-divisor 1000
    # one binary PNG per instance in <masks>/<stem>/<class>_<k>.png, given splits
    python tools/dataset_converters/instance_masks_to_coco.py images masks out \
        --layout binary --classes car person --split train=train.txt --split val=val.txt
"""
import argparse

from gan_mask_rcnn_lab.instance_masks_to_coco import convert_instance_masks


def key_values(items, cast, what):
    """Parse ``['a=1', 'b=2']`` into ``{'a': cast('1'), ...}``."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition('=')
        if not sep:
            raise SystemExit(f'{what} must look like NAME=VALUE, got {item!r}')
        out[key] = cast(value)
    return out


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('img_dir', help='folder of images')
    parser.add_argument('mask_dir', help='folder of masks (may equal img_dir)')
    parser.add_argument('out_dir', help='where <split>.json files are written')
    parser.add_argument('--classes', nargs='+', required=True, help='class names')
    parser.add_argument('--layout', choices=['id_map', 'binary'], default='id_map')
    parser.add_argument('--mask-suffix', default='.png',
                        help='id_map mask file = <image stem><suffix>')
    parser.add_argument('--value-to-class', nargs='+', metavar='VALUE=CLASS',
                        help='class of each value // label-divisor (default: one class)')
    parser.add_argument('--label-divisor', type=int, default=1)
    parser.add_argument('--split', action='append', metavar='NAME=LIST.txt',
                        help='a split and a text file with one image name per line')
    parser.add_argument('--ratios', nargs='+', metavar='NAME=FRACTION',
                        help='random split by fractions that sum to 1')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--min-area', type=int, default=0, help='drop smaller instances (px)')
    parser.add_argument('--no-progress', action='store_true')
    return parser.parse_args()


def read_list(path):
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def main():
    args = parse_args()
    value_to_class = key_values(args.value_to_class, str, '--value-to-class')
    written = convert_instance_masks(
        args.img_dir, args.mask_dir, args.out_dir, classes=args.classes,
        split_lists=key_values(args.split, read_list, '--split') or None,
        split_ratios=key_values(args.ratios, float, '--ratios') or None,
        seed=args.seed, layout=args.layout, mask_suffix=args.mask_suffix,
        value_to_class={int(k): v for k, v in value_to_class.items()} or None,
        label_divisor=args.label_divisor, min_area=args.min_area,
        progress=not args.no_progress)
    for split, path in written.items():
        print(f'{split}: {path}')


if __name__ == '__main__':
    main()
