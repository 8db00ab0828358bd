"""MMEngine checkpoints load with torch's safe loader; nothing beyond them does."""
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub

import gan_mask_rcnn  # noqa: F401  (registers the allowlist)


class _Evil:
    def __reduce__(self):
        return getattr, (HistoryBuffer, '__init__')


def test_message_hub_round_trip(tmp_path):
    hub = MessageHub.get_instance('compat_test')
    for v in (1.0, 2.0, 4.0):
        hub.update_scalar('train/loss', v)
    torch.save(dict(message_hub=hub.state_dict(), w=torch.ones(2)), tmp_path / 'c.pth')
    loaded = torch.load(tmp_path / 'c.pth', weights_only=True)
    buf = loaded['message_hub']['log_scalars']['train/loss']
    assert buf.mean() == pytest.approx(7 / 3) and buf.max() == 4.0


def test_other_getattr_is_refused(tmp_path):
    torch.save(dict(x=_Evil()), tmp_path / 'evil.pth')
    with pytest.raises(Exception, match='refusing getattr'):
        torch.load(tmp_path / 'evil.pth', weights_only=True)
