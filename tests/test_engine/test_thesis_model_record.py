"""GAN Mask R-CNN trains exactly as recorded: the losses of the CPU shapes GAN config
(shrunk as the other training tests shrink it) over 30 iterations (plain Mask R-CNN warm-up, then the adversarial ramp and full
weights) equal, bit for bit, those recorded in ``data/gan_mask_rcnn_shapes_30it.json``
before the GAN step was rewritten for any two-stage detector.

Run this file as a script to write the record (only from a commit whose model is the
reference): ``python tests/test_engine/test_thesis_model_record.py``.
"""
import json
import os.path as osp
import sys
import tempfile

from mmengine.hooks import Hook
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

HERE = osp.dirname(osp.abspath(__file__))
RECORD = osp.join(HERE, 'data', 'gan_mask_rcnn_shapes_30it.json')
ITERS = 30


class _RecordLosses(Hook):
    """Keep every iteration's log variables, as Python floats."""

    def __init__(self):
        self.rows = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.rows.append({k: float(v) for k, v in outputs.items()})


def thirty_iteration_losses(data_root: str, work_dir: str) -> list:
    """Train the CPU shapes GAN config, shrunk by ``tiny_cfg`` (128 px, 64
    proposals, 32 RoIs), for 30 iterations, its schedule rescaled to them
    (adversarial from iteration 8, weights ramping over 2), seed 0; return each
    iteration's log variables."""
    from conftest import CONFIGS, tiny_cfg
    init_default_scope('mmdet')
    cfg = tiny_cfg(osp.join(CONFIGS, 'gan-mask-rcnn_r18_fpn_shapes-cpu.py'), data_root,
                   work_dir, max_iters=ITERS)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    cfg.default_hooks.checkpoint = None
    cfg.visualizer.name = work_dir  # the visualizer is a per-name singleton
    runner = Runner.from_cfg(cfg)
    hook = _RecordLosses()
    runner.register_hook(hook, priority='LOWEST')
    runner.train()
    return hook.rows


def test_thirty_iterations_equal_the_record(shapes_root, tmp_path):
    with open(RECORD) as f:
        record = json.load(f)
    rows = thirty_iteration_losses(shapes_root, str(tmp_path))
    assert len(rows) == len(record['iterations']) == ITERS
    adversarial = [i for i, row in enumerate(record['iterations']) if 'loss_g_box' in row]
    assert adversarial and adversarial[0] > 0  # the record covers both phases
    for i, (ours, recorded) in enumerate(zip(rows, record['iterations'])):
        for key, value in recorded.items():
            assert key in ours, (i, key)
            assert ours[key] == value, (i, key, ours[key], value)


if __name__ == '__main__':
    sys.path.insert(0, osp.dirname(HERE))  # conftest
    from conftest import TINY_SIZE

    from gan_mask_rcnn_lab.synthetic_shapes import generate_shapes
    with tempfile.TemporaryDirectory() as tmp:
        root = osp.join(tmp, 'shapes')  # as conftest's shapes_root
        generate_shapes(root, num_images=8, size=TINY_SIZE, seed=0, split='train')
        generate_shapes(root, num_images=4, size=TINY_SIZE, seed=0, split='val')
        rows = thirty_iteration_losses(root, osp.join(tmp, 'work'))
    with open(RECORD, 'w') as f:
        json.dump(dict(config='configs/gan_mask_rcnn/gan-mask-rcnn_r18_fpn_shapes-cpu.py',
                       iters=ITERS, iterations=rows), f, indent=1)
        f.write('\n')
    print(f'wrote {RECORD}')
