"""Tests of the instance-mask and GlaS -> COCO converters.

References are the numpy masks the test paints: decoded RLEs must equal them,
boxes must be their pixel extents, and pycocotools must load the files.
"""
import json
import runpy
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from gan_mask_rcnn_lab.glas_to_coco import convert_glas
from gan_mask_rcnn_lab.instance_masks_to_coco import convert_instance_masks, split_names

ROOT = Path(__file__).resolve().parents[2]
H, W = 48, 64


def paint(rng, ids):
    """An id map (H, W) with one random rectangle per id (later ones on top)."""
    id_map = np.zeros((H, W), np.uint16)
    for value in ids:
        x, y = rng.integers(0, W - 12), rng.integers(0, H - 12)
        id_map[y:y + rng.integers(4, 12), x:x + rng.integers(4, 12)] = value
    return id_map


def extent(mask):
    """COCO box [x, y, w, h] of a binary mask, from its pixel coordinates."""
    ys, xs = np.nonzero(mask)
    return [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]


def check_against_maps(ann_file, maps, id_to_class):
    """Every non-zero value of every map is exactly one annotation."""
    coco = COCO(str(ann_file))
    names = {c['id']: c['name'] for c in coco.dataset['categories']}
    for img in coco.dataset['images']:
        id_map = maps[img['file_name']]
        anns = coco.imgToAnns[img['id']]
        values = [v for v in np.unique(id_map) if v]
        assert len(anns) == len(values)
        for ann, value in zip(anns, values):
            truth = id_map == value
            assert (coco.annToMask(ann) == truth).all()
            assert ann['bbox'] == pytest.approx(extent(truth))
            assert ann['area'] == truth.sum()
            assert ann['iscrowd'] == 0
            assert names[ann['category_id']] == id_to_class(value)
    return coco


@pytest.fixture
def id_map_folder(tmp_path):
    """5 images with 16-bit id maps (ids = class * 1000 + k); img_3 has none."""
    rng = np.random.default_rng(0)
    (tmp_path / 'img').mkdir()
    (tmp_path / 'ann').mkdir()
    maps = {}
    for i in range(5):
        ids = [] if i == 3 else [1000 * int(c) + k for k, c in
                                 enumerate(rng.integers(1, 3, size=3), 1)]
        maps[f'img_{i}.jpg'] = id_map = paint(rng, ids)
        cv2.imwrite(str(tmp_path / 'img' / f'img_{i}.jpg'),
                    rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
        Image.fromarray(id_map).save(tmp_path / 'ann' / f'img_{i}.png')
    return tmp_path, maps


def test_id_maps_with_value_to_class(id_map_folder):
    root, maps = id_map_folder
    written = convert_instance_masks(
        str(root / 'img'), str(root / 'ann'), str(root / 'out'), classes=('car', 'person'),
        value_to_class={1: 'car', 2: 'person'}, label_divisor=1000, progress=False)
    coco = check_against_maps(written['all'], maps, lambda v: ['car', 'person'][v // 1000 - 1])
    assert len(coco.dataset['images']) == 5  # img_3 has no instances and stays
    assert coco.imgToAnns[coco.dataset['images'][3]['id']] == []


def test_single_class_and_ratio_split(id_map_folder):
    root, maps = id_map_folder
    kwargs = dict(classes=('thing', ), split_ratios={'train': 0.6, 'val': 0.4},
                  seed=3, progress=False)
    written = convert_instance_masks(str(root / 'img'), str(root / 'ann'),
                                     str(root / 'out'), **kwargs)
    files = {s: [i['file_name'] for i in json.loads(Path(p).read_text())['images']]
             for s, p in written.items()}
    assert sorted(files['train'] + files['val']) == sorted(maps)
    assert (len(files['train']), len(files['val'])) == (3, 2)
    for path in written.values():
        check_against_maps(path, maps, lambda v: 'thing')
    again = convert_instance_masks(str(root / 'img'), str(root / 'ann'),
                                   str(root / 'out2'), **kwargs)
    assert Path(again['val']).read_text() == Path(written['val']).read_text()


def test_split_by_lists_accepts_stems_and_rejects_unknown_names():
    names = ['a.png', 'b.png', 'c.png']
    assert split_names(names, split_lists={'x': ['a', 'c.png']}) == {'x': ['a.png', 'c.png']}
    with pytest.raises(ValueError, match=r"split 'x'.*\['zzz'\]"):
        split_names(names, split_lists={'x': ['zzz']})
    with pytest.raises(ValueError, match='sum to 1'):
        split_names(names, split_ratios={'a': 0.5, 'b': 0.2})


def test_binary_masks_per_instance(tmp_path):
    rng = np.random.default_rng(1)
    (tmp_path / 'img').mkdir()
    maps, classes = {}, {}
    for i in range(3):
        name = f'{i}.png'
        cv2.imwrite(str(tmp_path / 'img' / name), np.zeros((H, W, 3), np.uint8))
        maps[name] = id_map = paint(rng, [1, 2] if i else [])
        folder = tmp_path / 'masks' / str(i)
        folder.mkdir(parents=True)
        for value in (1, 2) if i else ():
            cls = ['cat', 'dog'][(i + value) % 2]
            classes[(name, value)] = cls
            Image.fromarray(((id_map == value) * 255).astype(np.uint8)).save(
                folder / f'{cls}_{value}.png')
    written = convert_instance_masks(str(tmp_path / 'img'), str(tmp_path / 'masks'),
                                     str(tmp_path / 'out'), classes=('cat', 'dog'),
                                     layout='binary', progress=False)
    coco = COCO(written['all'])
    assert len(coco.dataset['images']) == 3
    got = sorted((coco.imgs[a['image_id']]['file_name'], coco.cats[a['category_id']]['name'],
                  tuple(a['bbox'])) for a in coco.dataset['annotations'])
    want = sorted((n, c, tuple(float(x) for x in extent(maps[n] == v)))
                  for (n, v), c in classes.items())
    assert got == want


def test_size_mismatch_names_both_files(id_map_folder):
    root, _ = id_map_folder
    Image.fromarray(np.zeros((H + 1, W), np.uint8)).save(root / 'ann' / 'img_2.png')
    with pytest.raises(ValueError, match=r"img_2\.png.*64x49.*img_2\.jpg.*64x48"):
        convert_instance_masks(str(root / 'img'), str(root / 'ann'), str(root / 'out'),
                               classes=('thing', ), progress=False)


@pytest.mark.parametrize('broken', ['img/img_1.jpg', 'ann/img_1.png'])
def test_unreadable_file_is_named(id_map_folder, broken):
    root, _ = id_map_folder
    (root / broken).write_bytes(b'not an image')
    with pytest.raises(ValueError, match=broken.split('/')[1].replace('.', r'\.')):
        convert_instance_masks(str(root / 'img'), str(root / 'ann'), str(root / 'out'),
                               classes=('thing', ), progress=False)


def test_value_without_class_is_named(id_map_folder):
    root, _ = id_map_folder
    with pytest.raises(ValueError, match=r'value 2001 \(class key 2\)'):
        convert_instance_masks(str(root / 'img'), str(root / 'ann'), str(root / 'out'),
                               classes=('car', ), value_to_class={1: 'car'},
                               label_divisor=1000, progress=False)


@pytest.fixture
def glas_release(tmp_path):
    """A GlaS-like release folder: BMP images with 8-bit *_anno.bmp labels."""
    rng = np.random.default_rng(2)
    maps = {}
    for name in ['train_1', 'train_2', 'testA_1', 'testB_1', 'testB_2']:
        cv2.imwrite(str(tmp_path / f'{name}.bmp'),
                    rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
        maps[f'{name}.bmp'] = id_map = paint(rng, [1, 2, 3]).astype(np.uint8)
        Image.fromarray(id_map).save(tmp_path / f'{name}_anno.bmp')
    (tmp_path / 'Grade.csv').write_text('name,grade\n')
    return tmp_path, maps


def test_glas_release(glas_release, tmp_path):
    root, maps = glas_release
    written = convert_glas(str(root), str(tmp_path / 'out'), progress=False)
    n_images = {s: len(COCO(p).dataset['images']) for s, p in written.items()}
    assert n_images == {'train': 2, 'testA': 1, 'testB': 2, 'test': 3}
    for path in written.values():
        check_against_maps(path, maps, lambda v: 'gland')


def run_cli(script, args, monkeypatch):
    """Run a converter CLI in this process, as ``python script args``."""
    monkeypatch.setattr(sys, 'argv', [script] + [str(a) for a in args])
    runpy.run_path(str(ROOT / 'tools' / 'dataset_converters' / script), run_name='__main__')


def test_clis(glas_release, id_map_folder, tmp_path, monkeypatch, capsys):
    root, _ = glas_release
    run_cli('glas_to_coco.py', [root, tmp_path / 'glas_out', '--no-progress'], monkeypatch)
    assert 'test:' in capsys.readouterr().out
    assert (tmp_path / 'glas_out' / 'testB.json').exists()
    folder, _ = id_map_folder
    (tmp_path / 'val.txt').write_text('img_0\nimg_4\n')
    run_cli('instance_masks_to_coco.py',
            [folder / 'img', folder / 'ann', tmp_path / 'cli_out', '--classes', 'car', 'person',
             '--value-to-class', '1=car', '2=person', '--label-divisor', '1000',
             '--split', f'val={tmp_path / "val.txt"}'], monkeypatch)
    val = COCO(str(tmp_path / 'cli_out' / 'val.json'))
    assert [i['file_name'] for i in val.dataset['images']] == ['img_0.jpg', 'img_4.jpg']
    with pytest.raises(SystemExit, match='NAME=VALUE'):
        run_cli('instance_masks_to_coco.py', [folder / 'img', folder / 'ann', tmp_path / 'x',
                                              '--classes', 'car', '--ratios', 'train'],
                monkeypatch)
