"""The GlaS configs read the GlaS-cc copy as the thesis' data set: 85 training and 80
test images (testA + testB), one class ``gland``, every instance kept.

Reference: the counts of the data set's description (train 85 images / 765
instances, test 80 / 776). Skipped where no copy is found (``GLAS_CC_ROOT``, else
``data/glas_cc``)."""
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

from conftest import CONFIGS
from gan_mask_rcnn_lab.config_utils import set_data_root
from mmdet.registry import DATASETS


@pytest.mark.parametrize('config', ['mask-rcnn_r18_fpn_glas-cpu.py',
                                    'mask-rcnn_r50_fpn_2k_glas.py'])
def test_glas_configs_read_the_whole_data_set(config, glas_cc):
    cfg = Config.fromfile(osp.join(CONFIGS, config))
    assert cfg.train_dataloader.dataset.data_root == 'data/glas_cc/'
    set_data_root(cfg, glas_cc, 'annotations/train.json', 'annotations/test.json',
                  img_prefix='images/')
    init_default_scope('mmdet')
    for key, images, instances in (('train_dataloader', 85, 765),
                                   ('test_dataloader', 80, 776)):
        ds_cfg = cfg[key].dataset
        ds_cfg.pipeline = []
        ds = DATASETS.build(ds_cfg)
        ds.full_init()
        assert ds.metainfo['classes'] == ('gland', )
        assert len(ds) == images, key
        assert sum(len(ds.get_data_info(i)['instances']) for i in range(len(ds))) == instances
