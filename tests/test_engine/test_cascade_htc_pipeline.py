"""The Cascade Mask R-CNN and HTC GAN configs through the user's pipeline: train,
interrupt, ``--resume`` (both optimizers restored), publish with
``strip_discriminators.py`` and run mmdet's inference on the baseline config.

References: the checkpoint before the resume (optimizer states), the key set of the
mmdet detector built from the baseline config, and the GAN detector's predictions
with the full checkpoint."""
import os
import os.path as osp

import pytest
import torch
from gan_testing import STAGE_PAIRS, tiny_stage_cfg, train_with_interruption
from mmengine.config import Config

from mmdet.apis import DetInferencer, inference_detector, init_detector
from tools.model_converters.strip_discriminators import publish

N = 2  # iterations: one before the interruption, one after the resume, both adversarial


@pytest.mark.parametrize('kind', sorted(STAGE_PAIRS))
def test_resume_publish_and_infer_on_the_baseline_config(kind, shapes_root, tmp_path):
    baseline, gan = STAGE_PAIRS[kind]
    work_dir = str(tmp_path / 'gan')

    def make_cfg():
        cfg = tiny_stage_cfg(gan, shapes_root, work_dir, max_iters=N)
        cfg.model.update(adv_start_fraction=0, adv_ramp_fraction=0)
        return cfg

    train_with_interruption(make_cfg, N)
    half = torch.load(osp.join(work_dir, 'iter_1.pth'), map_location='cpu',
                      weights_only=False)
    full_ckpt = osp.join(work_dir, f'iter_{N}.pth')
    full = torch.load(full_ckpt, map_location='cpu', weights_only=False)
    assert full['meta']['iter'] == N
    for side in ('generator', 'discriminator'):  # both optimizers saved and restored
        assert half['optimizer'][side]['state'] and full['optimizer'][side]['state'], side
    moved = [k for k, v in full['state_dict'].items()
             if 'discriminator' in k and not torch.equal(v, half['state_dict'][k])]
    assert moved  # the discriminators trained after the resume

    stripped = publish(full_ckpt, str(tmp_path / 'published.pth'))
    base_cfg = tiny_stage_cfg(baseline, shapes_root, str(tmp_path / 'base'))
    gan_cfg = make_cfg()
    for cfg, name in ((base_cfg, 'base.py'), (gan_cfg, 'gan.py')):
        cfg.dump(str(tmp_path / name))
    inferencer = DetInferencer(model=str(tmp_path / 'base.py'), weights=stripped,
                               device='cpu', show_progress=False)
    assert type(inferencer.model).__name__ == Config.fromfile(baseline).model.type
    state = torch.load(stripped, map_location='cpu', weights_only=False)['state_dict']
    assert set(state) == set(inferencer.model.state_dict())
    img = osp.join(shapes_root, 'val', sorted(os.listdir(osp.join(shapes_root, 'val')))[0])
    ref = inferencer(img, return_datasamples=True)['predictions'][0].pred_instances
    gan_model = init_detector(str(tmp_path / 'gan.py'), full_ckpt, device='cpu')
    ours = inference_detector(gan_model, img).pred_instances
    assert len(ref) > 0
    for field in ('bboxes', 'scores', 'labels', 'masks'):
        assert torch.equal(ours[field], ref[field]), field
