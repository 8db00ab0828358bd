"""Every dataset type of the configs stops at start-up, with the path or both class
lists named, on missing or corrupt data and on a class list that does not fit the
annotation file; a list that leaves categories out warns with counts.

The reference is a COCO file written here by hand (``coco_file``): categories
``cat`` (id 7) and ``dog`` (id 3) in that order; image 1 holds a cat and a dog,
image 2 two dogs, image 3 one cat. Every expected count is read off that file.
"""
import glob
import json
import os.path as osp
import warnings

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from conftest import BASELINE_CPU, CONFIGS, tiny_cfg
from mmdet.registry import DATASETS

TYPES = ['CheckedCocoDataset', 'CheckedCityscapesDataset', 'ShapesDataset', 'GlaSDataset']
# name part of a config: what its missing-data message must point to
HOW_TO_GET = {'coco': 'cocodataset.org', 'cityscapes': 'dataset_converters/cityscapes.py',
              'phone': 'not public', 'shapes': 'tools/generate_shapes.py',
              'glas': 'glas_to_coco.py'}
MODEL_CONFIGS = sorted(glob.glob(osp.join(CONFIGS, '*.py')))


def _box(x, y, w, h, category_id, ann_id, image_id):
    return dict(id=ann_id, image_id=image_id, category_id=category_id, iscrowd=0,
                bbox=[x, y, w, h], area=w * h,
                segmentation=[[x, y, x + w, y, x + w, y + h, x, y + h]])


def _write_coco(root, name='ann.json', annotations=True):
    images = [dict(id=i, file_name=f'{i}.png', width=64, height=64) for i in (1, 2, 3)]
    anns = [_box(4, 4, 20, 20, 7, 1, 1), _box(30, 30, 20, 20, 3, 2, 1),
            _box(4, 4, 20, 20, 3, 3, 2), _box(30, 30, 20, 20, 3, 4, 2),
            _box(10, 10, 30, 30, 7, 5, 3)] if annotations else []
    cats = [dict(id=7, name='cat'), dict(id=3, name='dog')]
    with open(osp.join(root, name), 'w') as f:
        json.dump(dict(images=images, annotations=anns, categories=cats), f)


@pytest.fixture
def coco_file(tmp_path):
    (tmp_path / 'images').mkdir()
    _write_coco(str(tmp_path))
    return tmp_path


def _build(root, type_='CheckedCocoDataset', ann_file='ann.json', **kwargs):
    init_default_scope('mmdet')
    cfg = dict(type=type_, data_root=f'{root}/', ann_file=ann_file,
               data_prefix=dict(img='images/'), pipeline=[],
               filter_cfg=dict(filter_empty_gt=True))
    return DATASETS.build(dict(cfg, **kwargs))


def _our_warnings(record):
    return [str(w.message) for w in record if 'metainfo.classes' in str(w.message)]


@pytest.mark.parametrize('type_,classes', [
    ('CheckedCocoDataset', ('component_1', 'component_2')),  # the phone placeholders
    ('CheckedCityscapesDataset', None), ('ShapesDataset', None), ('GlaSDataset', None)])
def test_no_listed_class_stops_naming_both_lists(coco_file, type_, classes):
    kwargs = dict(metainfo=dict(classes=classes)) if classes else {}
    expected = classes or DATASETS.get(type_).METAINFO['classes']
    with pytest.raises(ValueError) as err:
        _build(coco_file, type_, **kwargs)
    msg = str(err.value)
    for name in ('cat', 'dog', *expected):
        assert repr(name) in msg, msg
    assert osp.join(str(coco_file), 'ann.json') in msg


def test_class_missing_from_file_stops(coco_file):
    # mmdet would number cat 0 and dog 1 while the list names dog 'bird'
    with pytest.raises(ValueError, match=r"\['bird'\] (is|are) not") as err:
        _build(coco_file, metainfo=dict(classes=('cat', 'bird', 'dog')))
    assert "('cat', 'dog')" in str(err.value)


def test_class_order_other_than_the_files_stops(coco_file):
    # mmdet numbers labels in the file's order: every cat would be named 'dog'
    with pytest.raises(ValueError, match='order') as err:
        _build(coco_file, metainfo=dict(classes=('dog', 'cat')))
    assert "('cat', 'dog')" in str(err.value) and "('dog', 'cat')" in str(err.value)


@pytest.mark.parametrize('listed,anns,images,left', [('cat', 3, 1, [1, 3]),
                                                     ('dog', 2, 1, [1, 2])])
def test_partial_list_warns_with_counts(coco_file, listed, anns, images, left):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter('always')
        ds = _build(coco_file, metainfo=dict(classes=(listed, )))
    msgs = _our_warnings(record)
    assert len(msgs) == 1, [str(w.message) for w in record]
    assert f'{anns} annotations' in msgs[0] and f'{images} image' in msgs[0], msgs[0]
    assert [ds.get_data_info(i)['img_id'] for i in range(len(ds))] == left
    assert all(inst['bbox_label'] == 0 for i in range(len(ds))
               for inst in ds.get_data_info(i)['instances'])


def test_full_list_loads_quietly_with_the_files_labels(coco_file):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter('always')
        ds = _build(coco_file, metainfo=dict(classes=('cat', 'dog')))
    assert not _our_warnings(record)
    labels = {ds.get_data_info(i)['img_id']: [x['bbox_label'] for x in
                                              ds.get_data_info(i)['instances']]
              for i in range(len(ds))}
    assert labels == {1: [0, 1], 2: [1, 1], 3: [0]}


def test_no_image_left_stops(tmp_path):
    (tmp_path / 'images').mkdir()
    _write_coco(str(tmp_path), annotations=False)
    with pytest.raises(ValueError, match='no image') as err:
        _build(tmp_path, metainfo=dict(classes=('cat', 'dog')))
    assert 'filter_empty_gt' in str(err.value)


def test_empty_test_file_stops(tmp_path):
    (tmp_path / 'images').mkdir()
    (tmp_path / 'ann.json').write_text(json.dumps(
        dict(images=[], annotations=[], categories=[dict(id=1, name='gland')])))
    with pytest.raises(ValueError, match='no image'):
        _build(tmp_path, 'GlaSDataset', test_mode=True)


@pytest.mark.parametrize('content', ['{"images": [', '[1, 2]', '\x89PNG\r\n\x1a\n'])
@pytest.mark.parametrize('type_', TYPES)
def test_corrupt_annotation_file_is_named(tmp_path, type_, content):
    (tmp_path / 'images').mkdir()
    (tmp_path / 'ann.json').write_text(content)
    with pytest.raises(ValueError, match='not a COCO annotation file') as err:
        _build(tmp_path, type_)
    assert osp.join(str(tmp_path), 'ann.json') in str(err.value)


def test_users_own_file_missing_says_how_to_point_at_it(tmp_path):
    (tmp_path / 'images').mkdir()
    with pytest.raises(FileNotFoundError, match='ann_file') as err:
        _build(tmp_path, ann_file='mine.json')
    assert osp.join(str(tmp_path), 'mine.json') in str(err.value)


def test_cityscapes_test_split_needs_its_instance_ground_truth(coco_file):
    (coco_file / 'leftImg8bit' / 'val').mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match='gtFine') as err:
        _build(coco_file, 'CheckedCityscapesDataset', test_mode=True,
               data_prefix=dict(img='leftImg8bit/val/'), metainfo=dict(classes=('cat', )))
    assert osp.join(str(coco_file), 'gtFine', 'val') in str(err.value)


def _datasets(cfg):
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        ds = cfg[key].dataset
        yield key, (ds.dataset if ds.type == 'RepeatDataset' else ds)


@pytest.mark.parametrize('path', MODEL_CONFIGS, ids=[osp.basename(p) for p in MODEL_CONFIGS])
def test_every_config_names_missing_data_and_how_to_get_it(path, tmp_path):
    cfg = Config.fromfile(path)
    hint = [v for k, v in HOW_TO_GET.items() if k in osp.basename(path)]
    assert len(hint) == 1, path
    init_default_scope('mmdet')
    for key, ds in _datasets(cfg):
        ds.data_root = f'{tmp_path}/absent/'
        with pytest.raises(FileNotFoundError) as err:
            DATASETS.build(ds)
        msg = str(err.value)
        assert osp.join(f'{tmp_path}/absent', ds.ann_file) in msg, (key, msg)
        assert hint[0] in msg, (key, msg)


def test_wrong_class_list_stops_training_at_start(shapes_root, tmp_path):
    """The issue's case: a class list naming none of the file's categories."""
    cfg = tiny_cfg(BASELINE_CPU, shapes_root, str(tmp_path))
    cfg.train_dataloader.dataset.metainfo = dict(classes=('cat', ))
    with pytest.raises(ValueError) as err:
        Runner.from_cfg(cfg).train()
    for name in ('cat', 'ellipse', 'polygon', 'star', 'gear'):
        assert repr(name) in str(err.value)


@pytest.mark.parametrize('path', MODEL_CONFIGS, ids=[osp.basename(p) for p in MODEL_CONFIGS])
def test_every_config_reads_mmdet_data_layout(path):
    """Data under ``data/<set>/``, relative to the repository, as in mmdet's configs;
    no path outside it (a copy elsewhere is linked there or given on the command
    line)."""
    cfg = Config.fromfile(path)
    sets = {'coco': 'data/coco/', 'cityscapes': 'data/cityscapes/', 'glas': 'data/glas_cc/',
            'shapes': 'data/shapes/', 'phone': 'data/phone_recycling/'}
    root = [v for k, v in sets.items() if k in osp.basename(path)]
    assert len(root) == 1, path
    for key, ds in _datasets(cfg):
        assert ds.data_root == root[0], (key, ds.data_root)
    for key in ('val_evaluator', 'test_evaluator'):
        for metric in cfg[key] if isinstance(cfg[key], list) else [cfg[key]]:
            for value in metric.values():
                if isinstance(value, str) and value.startswith(('data/', '../', '/')):
                    assert value.startswith(root[0]), (key, value)
