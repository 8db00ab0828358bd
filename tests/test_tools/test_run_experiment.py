"""The experiment runner's bookkeeping: held-out split, data, tables, borrowed baselines."""
import json
import os
import os.path as osp
import pathlib
import re
import runpy
import subprocess
import sys
import threading
import time

import pytest
from mmengine.config import Config

from conftest import REPO, fake_run

exp = runpy.run_path(f'{REPO}/tools/run_experiment.py', run_name='experiment')


def test_val_split_is_held_out_of_train(shapes_root, tmp_path):
    train, val = exp['carve_val'](shapes_root, 'annotations/train.json', 0.25, str(tmp_path))
    t, v = json.load(open(train)), json.load(open(val))
    t_ids, v_ids = {i['id'] for i in t['images']}, {i['id'] for i in v['images']}
    assert len(v_ids) == 2 and len(t_ids) == 6 and not t_ids & v_ids
    assert all(a['image_id'] in v_ids for a in v['annotations'])
    assert all(a['image_id'] in t_ids for a in t['annotations'])


def test_split_files_are_never_seen_half_written(shapes_root, tmp_path):
    """The two processes of a seed (``--models baseline`` / ``--models gan``) each
    carve the split at start-up while the other's training may be reading it: a
    reader polling the file while it is rewritten must only ever see whole JSON."""
    train, _ = exp['carve_val'](shapes_root, 'annotations/train.json', 0.25, str(tmp_path))
    expected = json.load(open(train))
    reader = subprocess.Popen([sys.executable, '-c', (
        'import json, sys\n'
        'bad = 0\n'
        'for _ in range(5000):\n'
        '    try:\n'
        '        json.load(open(sys.argv[1]))\n'
        '    except ValueError:\n'
        '        bad += 1\n'
        'print(bad)\n'), train], stdout=subprocess.PIPE, text=True)
    while reader.poll() is None:
        exp['carve_val'](shapes_root, 'annotations/train.json', 0.25, str(tmp_path))
    assert reader.stdout.read().strip() == '0'
    assert json.load(open(train)) == expected
    assert sorted(os.listdir(tmp_path)) == ['train_split.json', 'val_split.json']


def test_synthetic_set_is_generated_once_by_two_processes(tmp_path, monkeypatch):
    """Both processes of a seed start with the set missing: one generates it, the
    other waits for it instead of writing the same files at the same time."""
    calls = []

    def slow_generate(root, **kwargs):
        calls.append(root)
        time.sleep(0.5)  # the other caller arrives while the set is being written
        os.makedirs(f'{root}/annotations')
        open(f'{root}/annotations/val.json', 'w').close()

    ensure = exp['ensure_splits']
    monkeypatch.setitem(ensure.__globals__, 'generate_splits', slow_generate)
    threads = [threading.Thread(target=ensure, args=(str(tmp_path / 'shapes'),
                                                     'annotations/val.json'))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [str(tmp_path / 'shapes')]


def test_make_data_writes_the_set_the_runner_generates(tmp_path):
    """`make data` (tools/generate_shapes.py defaults) and the runner's own
    generation must give the same files: results of one are read beside the other."""
    subprocess.run([sys.executable, f'{REPO}/tools/generate_shapes.py', '--out',
                    str(tmp_path / 'cli')], check=True, capture_output=True)
    exp['ensure_splits'](str(tmp_path / 'runner'), 'annotations/val.json')
    for split in ('train', 'val'):
        cli, runner = (json.loads((tmp_path / d / 'annotations' / f'{split}.json')
                                  .read_text()) for d in ('cli', 'runner'))
        assert cli == runner


def test_held_out_split_files_reach_dataset_and_evaluator(shapes_root, tmp_path, monkeypatch):
    """Split files outside data_root (the runner writes them into its work dir):
    the dataloaders and the COCO evaluator must read those files, also when the work
    dir was given relative to the current directory."""
    from mmengine.registry import init_default_scope

    from mmdet.registry import DATASETS, METRICS
    from gan_mask_rcnn_lab.config_utils import set_data_root
    monkeypatch.chdir(tmp_path)
    train, val = exp['carve_val'](shapes_root, 'annotations/train.json', 0.25,
                                  str(tmp_path))
    cfg = Config.fromfile(f'{REPO}/configs/gan_mask_rcnn/mask-rcnn_r18_fpn_shapes-cpu.py')
    set_data_root(cfg, shapes_root, train, val)
    init_default_scope('mmdet')
    assert len(DATASETS.build(cfg.train_dataloader.dataset)) == 6
    assert len(DATASETS.build(cfg.test_dataloader.dataset)) == 2
    assert METRICS.build(cfg.test_evaluator)._coco_api.getImgIds() == sorted(
        i['id'] for i in json.load(open(val))['images'])
    # relative annotation files stay relative to data_root
    set_data_root(cfg, shapes_root, 'annotations/train.json', 'annotations/val.json')
    assert len(METRICS.build(cfg.val_evaluator)._coco_api.getImgIds()) == 4


def test_markdown_names_what_was_run(shapes_root, tmp_path):
    """The table's header names the images trained and evaluated on (the held-out
    split's), the image scale and the overrides; one seed prints no spread."""
    import argparse
    train, val = exp['carve_val'](shapes_root, 'annotations/train.json', 0.25,
                                  str(tmp_path))
    args = argparse.Namespace(dataset='shapes', data_root=shapes_root, iters=10,
                              val_fraction=0.25,
                              image_scale=[288, 192], options={},
                              gan_options={'model.roi_head.max_disc_rois_per_img': 8},
                              train_ann=train, test_ann=val, baseline_from=None,
                              exact_resume=True)
    runs = {'baseline': {0: {'segm_mAP': 0.10}}, 'gan': {0: {'segm_mAP': 0.12}}}
    md = exp['to_markdown'](exp['summarize'](runs, [0]), args, {'gan': [60.0]}, [0])
    assert '(train 6 images, 128x128; evaluated 2 images, 128x128)' in md
    assert 'a held-out part of train. Images resized to fit 288x192.' in md
    assert 'GAN side: model.roi_head.max_disc_rois_per_img=8.' in md
    assert 'Reseeded before every batch (`--exact-resume`).' in md
    assert '| segm_mAP | 10.0 | 12.0 | +2.0 | +2.0 | - |' in md
    # the files: each run's recorded kernel environments, and a table pool_seeds reads
    env = dict(torch='2.13.0+cpu', cpu_capability='AVX2', OMP_NUM_THREADS='1')
    (tmp_path / 'baseline_seed0').mkdir()
    (tmp_path / 'baseline_seed0' / 'environment.json').write_text(json.dumps([env]))
    md = exp['write_results'](str(tmp_path), args, runs, {'gan': [60.0]}, [0])
    assert md.endswith('different kernel environments**, whose float sums round '
                       'differently (projects/gan_mask_rcnn/results/README.md): torch '
                       '2.13.0+cpu, AVX2, OMP_NUM_THREADS=1 (baseline_seed0); unrecorded '
                       '(gan_seed0).\n')
    saved = json.loads((tmp_path / 'results.json').read_text())
    assert saved['environments'] == {'baseline_seed0': [env], 'gan_seed0': None}
    pool = runpy.run_path(f'{REPO}/tools/analysis_tools/pool_seeds.py', run_name='pool_seeds')
    assert pool['saved_pairs'](saved) == {
        0: {'baseline': {'segm_mAP': 0.10}, 'gan': {'segm_mAP': 0.12}}}


def test_train_wall_time_counts_every_session_of_a_resumed_run(tmp_path):
    from gan_mask_rcnn_lab.mim_runs import train_wall_seconds
    sessions = {'20261130_120051': ('12:00:51', '14:47:28'),   # cut off at iteration 820
                '20261130_150340': ('15:03:40', '15:44:37')}   # resumed from 800
    for stamp, (first, last) in sessions.items():
        (tmp_path / stamp).mkdir()
        (tmp_path / stamp / f'{stamp}.log').write_text(
            f'2026/11/30 {first} - mmengine - INFO - \nSystem environment:\n'
            f'2026/11/30 {last} - mmengine - INFO - Iter(train) [ 820/1000]\n')
        (tmp_path / stamp / 'vis_data').mkdir()  # not a log
    (tmp_path / 'test' / 'x').mkdir(parents=True)  # a test run's log is not training
    (tmp_path / 'test' / 'x' / 'x.log').write_text('2026/11/30 16:00:00 - a\n')
    (tmp_path / 'test' / 'x.log').write_text('2026/11/30 16:00:00 - a\n2026/11/30 17:00:00 - b\n')
    # 2:46:37 + 0:40:57
    assert train_wall_seconds(str(tmp_path)) == 2 * 3600 + 46 * 60 + 37 + 40 * 60 + 57


def test_baselines_are_borrowed_only_from_the_same_config(shapes_root, tmp_path, request):
    """``--baseline-from``: a tuning step reads an earlier experiment's baselines, but
    only if they ran the config this command would train (same split content, scale,
    schedule, --options); anything else stops with what differs."""
    import argparse
    import shutil
    import tempfile
    from gan_mask_rcnn_lab.mim_runs import dump_run_config
    # a short source path and a long one here: the dumped config texts wrap their
    # ann_file lines differently, the configs are the same
    src = tempfile.mkdtemp()
    request.addfinalizer(lambda: shutil.rmtree(src))

    def setup(work, **kw):
        os.makedirs(work, exist_ok=True)
        args = argparse.Namespace(dataset='shapes', data_root=None, configs=None, iters=20,
                                  val_fraction=0.25, image_scale=[288, 192], options={},
                                  gan_options={}, baseline_from=src, exact_resume=False)
        vars(args).update(kw)
        args.train_ann, args.test_ann = exp['carve_val'](
            shapes_root, 'annotations/train.json', args.val_fraction, work)
        return args

    src_args = setup(src)
    ds = dict(exp['dataset_spec'](src_args), root=shapes_root)
    run = pathlib.Path(src, 'baseline_seed3')
    dump_run_config(exp['build_config'](src_args, 'baseline', ds), str(run / 'config.py'), 3)
    # as `mim train mmdet --work-dir ...` leaves it: re-dumped with the keys it sets
    trained = Config.fromfile(str(run / 'config.py'))
    trained.merge_from_dict(dict(work_dir=str(run), launcher='none'))
    trained.dump(str(run / 'config.py'))
    (run / 'test' / 'x').mkdir(parents=True)
    (run / 'test' / 'x' / 'x.json').write_text('{"coco/segm_mAP": 0.25, "step": 20}\n')
    (run / 'wall_seconds.txt').write_text('61\n')

    work = str(tmp_path / 'tune')
    args = setup(work, gan_options={'model.roi_head.mask_discriminator.loss_weight': 0.1})
    metrics, wall = exp['borrowed_baseline'](
        args, 3, exp['build_config'](args, 'baseline', ds), work)
    assert metrics == {'segm_mAP': 0.25} and wall == 61.0
    with pytest.raises(SystemExit, match='no finished baseline of seed 4'):
        exp['borrowed_baseline'](args, 4, exp['build_config'](args, 'baseline', ds), work)
    for kw, message in (({'iters': 30}, r'-\s+end=20,\n\+\s+end=30,'),
                        ({'options': {'optim_wrapper.optimizer.lr': 0.05}}, 'lr=0.05'),
                        ({'options': {'load_from': 'coco.pth'}}, r"\+load_from = 'coco.pth'"),
                        ({'exact_resume': True}, "type='ReseedIterBasedTrainLoop'"),
                        ({'val_fraction': 0.5}, 'train_split.json differs')):
        other = str(tmp_path / f'other{len(message)}')
        args = setup(other, **kw)
        with pytest.raises(SystemExit, match=message):
            exp['borrowed_baseline'](args, 3, exp['build_config'](args, 'baseline', ds),
                                     other)


def write_instance_mask_folder(root, num_images=6, size=64):
    """A user's data as it often comes: ``images/*.png`` and ``masks/*.png`` whose
    pixel values are instance ids (0 background), one class."""
    import cv2
    import numpy as np
    rng = np.random.default_rng(0)
    for folder in ('images', 'masks'):
        os.makedirs(osp.join(root, folder))
    for i in range(num_images):
        img = rng.integers(0, 60, (size, size, 3)).astype(np.uint8)
        ids = np.zeros((size, size), np.uint8)
        for k in range(1, 3):
            x, y = rng.integers(4, size - 24, 2)
            w, h = rng.integers(12, 20, 2)
            ids[y:y + h, x:x + w] = k
            img[y:y + h, x:x + w] = rng.integers(150, 255, 3)
        cv2.imwrite(osp.join(root, 'images', f'{i:02d}.png'), img)
        cv2.imwrite(osp.join(root, 'masks', f'{i:02d}.png'), ids)


def test_own_coco_data_end_to_end(tmp_path, monkeypatch, capsys):
    """A user's own data end to end: a folder of images with instance-id PNG masks
    converted by tools/dataset_converters/instance_masks_to_coco.py, both models of
    a seed trained by `mim train` and tested by `mim test` (bbox, segm, Boundary
    AP) as CheckedCocoDataset with the user's class; one table naming the kernel
    environment each run trained in; a re-run trains nothing, records no second
    environment and keeps each run's config; a cut-off run is not resumed with
    another config."""
    data = tmp_path / 'cells'
    write_instance_mask_folder(str(data))
    monkeypatch.setattr(sys, 'argv', [
        'instance_masks_to_coco.py', str(data / 'images'), str(data / 'masks'),
        str(data / 'annotations'), '--classes', 'cell', '--ratios', 'train=0.5',
        'val=0.5', '--no-progress'])
    runpy.run_path(f'{REPO}/tools/dataset_converters/instance_masks_to_coco.py',
                   run_name='__main__')
    work = tmp_path / 'exp'
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    monkeypatch.setattr(sys, 'argv', [
        'run_experiment.py', '--data-root', str(data), '--img-prefix', 'images/',
        '--train-ann', 'annotations/train.json', '--test-ann', 'annotations/val.json',
        '--classes', 'cell', '--seeds', '0', '--iters', '2', '--image-scale', '64', '64',
        '--work-dir', str(work)])
    exp['main']()
    saved = json.loads((work / 'results.json').read_text())
    assert saved['seeds_done'] == [0]
    for model in ('baseline', 'gan'):
        assert set(saved['runs'][model]['0']) >= {'bbox_mAP', 'segm_mAP', 'boundary_mAP'}
        cfg = Config.fromfile(str(work / f'{model}_seed0' / 'config.py'))
        assert cfg.model.type == {'baseline': 'MaskRCNN', 'gan': 'GANMaskRCNN'}[model]
        assert cfg.test_dataloader.dataset.type == 'CheckedCocoDataset'
        assert cfg.test_dataloader.dataset.metainfo.classes == ('cell', )
        assert cfg.model.roi_head.mask_head.num_classes == 1
        assert cfg.train_dataloader.dataset.data_root == str(data) + '/'
    env = saved['environments']['baseline_seed0']
    assert saved['environments'] == {'baseline_seed0': env, 'gan_seed0': env}
    assert len(env) == 1 and env[0]['OMP_NUM_THREADS'] == '1'
    label = f"torch {env[0]['torch']}, {env[0]['cpu_capability']}, OMP_NUM_THREADS=1"
    md = (work / 'results.md').read_text()
    assert md.startswith(f'Dataset `{data}` (train 3 images, 64x64; evaluated 3 images')
    assert md.endswith(f'Kernel environment of every training: {label}.\n')
    ckpt = work / 'gan_seed0' / 'iter_2.pth'
    stamp = ckpt.stat().st_mtime_ns
    record = (work / 'gan_seed0' / 'config.py').read_text()
    monkeypatch.setenv('OMP_NUM_THREADS', '2')  # would be a second environment
    # another config: the finished runs are read as they are, their record kept
    sys.argv += ['--options', 'default_hooks.logger.interval=7']
    exp['main']()
    assert ckpt.stat().st_mtime_ns == stamp
    assert json.loads((work / 'gan_seed0' / 'environment.json').read_text()) == env
    assert (work / 'gan_seed0' / 'config.py').read_text() == record
    assert 'warning: ' in capsys.readouterr().out
    # a cut-off run is not resumed with another config
    ckpt.unlink()
    with pytest.raises(SystemExit, match=r'started with another config(.|\n)*interval'):
        exp['main']()


@pytest.mark.parametrize('argv, message', [
    (['--classes', 'nucleus'], r"--classes \['nucleus'\] are not categories of .*train"
                               r"\.json, which has \['cell'\]"),
    (['--dataset', 'shapes'], 'either --dataset or --data-root'),
])
def test_own_data_arguments_are_checked(argv, message, tmp_path, monkeypatch, capsys):
    (tmp_path / 'train.json').write_text(json.dumps(dict(
        images=[], annotations=[], categories=[dict(id=1, name='cell')])))
    monkeypatch.setattr(sys, 'argv', [
        'run_experiment.py', '--data-root', str(tmp_path), '--train-ann', 'train.json',
        '--test-ann', 'train.json', '--work-dir', str(tmp_path / 'w')] + argv)
    with pytest.raises(SystemExit) as stop:
        exp['main']()
    assert re.search(message, f'{stop.value} {capsys.readouterr().err}')


def test_glas_preset_finds_its_data_by_env_var_or_option(tmp_path, monkeypatch):
    """``--dataset glas`` reads data/glas_cc, or the folder ``GLAS_CC_ROOT`` names;
    ``--data-root`` overrides both; a folder without the data stops, naming both ways."""
    import argparse
    for name in ('env', 'option'):
        (tmp_path / name / 'annotations').mkdir(parents=True)
        (tmp_path / name / 'images').mkdir()
        (tmp_path / name / 'annotations' / 'train.json').write_text('{}')

    def root(data_root=None):
        args = argparse.Namespace(dataset='glas', data_root=data_root, configs=None)
        return exp['dataset_spec'](args)['root']

    monkeypatch.delenv('GLAS_CC_ROOT', raising=False)
    default = osp.join(REPO, 'data', 'glas_cc')
    if osp.isdir(default):
        assert root() == default
    else:
        with pytest.raises(SystemExit, match=f'not found at {re.escape(default)}'
                                             '.*GLAS_CC_ROOT=.*--data-root'):
            root()
    monkeypatch.setenv('GLAS_CC_ROOT', str(tmp_path / 'env'))
    assert root() == str(tmp_path / 'env')
    assert root(str(tmp_path / 'option')) == str(tmp_path / 'option')
    monkeypatch.setenv('GLAS_CC_ROOT', str(tmp_path / 'absent'))
    with pytest.raises(SystemExit, match='GlaS-cc not found at .*absent'):
        root()


def test_the_process_finishing_last_writes_the_paired_table(shapes_root, tmp_path,
                                                            monkeypatch):
    """Two processes share a seed (``--models baseline`` and ``--models gan``): the
    one whose partner finished while it trained still writes the paired table."""
    monkeypatch.setitem(exp['DATASETS'], 'shapes', dict(
        root=shapes_root, img_prefix='', train='annotations/train.json',
        test='annotations/val.json'))
    runner = exp['main'].__globals__

    def train(cfg_file, run_dir, iters, log):  # the baseline's process finishes meanwhile
        fake_run(tmp_path, 0, 0.3, model='baseline')
        return osp.join(run_dir, f'iter_{iters}.pth')

    monkeypatch.setitem(runner, 'mim_train', train)
    monkeypatch.setitem(runner, 'mim_test',
                        lambda *args: {'segm_mAP': 0.25, 'bbox_mAP': 0.1})
    monkeypatch.setitem(runner, 'record_environment', lambda run_dir: None)
    monkeypatch.setitem(runner, 'train_wall_seconds', lambda run_dir: 50.0)
    monkeypatch.setattr(sys, 'argv', [
        'run_experiment.py', '--dataset', 'shapes', '--seeds', '0', '--models', 'gan',
        '--iters', '2', '--image-scale', '64', '64', '--work-dir', str(tmp_path)])
    exp['main']()
    saved = json.loads((tmp_path / 'results.json').read_text())
    assert saved['seeds_done'] == [0]
    assert saved['runs']['baseline']['0']['segm_mAP'] == 0.3
    assert saved['runs']['gan']['0']['segm_mAP'] == 0.25
