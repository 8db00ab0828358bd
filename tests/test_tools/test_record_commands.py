"""Every command of the experiment record still runs as written: its script exists,
its options are the script's (parsed by the script's own argparse parser), the
config files it names exist, and every config key it overrides (``--options``,
``--gan-options``, ``--cfg-options``) is a key of the config it changes or an
argument of the module that key configures.

Reference: the record's text (``projects/gan_mask_rcnn/results/README.md``), its
fenced ``bash``/``shell`` blocks and its inline ``python ...`` spans; a variant line
``#   ... --opt value`` takes the options of the command above it."""
import argparse
import inspect
import os.path as osp
import re
import runpy
import shlex

import pytest
from mmengine.config import Config

from conftest import CONFIGS, REPO

RECORD = osp.join(REPO, 'projects', 'gan_mask_rcnn', 'results', 'README.md')
KEY_OPTIONS = ('--options', '--gan-options', '--cfg-options')


def _commands(text):
    """``(script, args)`` of every ``python`` command in ``text``."""
    found = []
    blocks = re.findall(r'```(?:bash|shell|sh)\n(.*?)```', text, re.S)
    for block in blocks:
        lines = re.sub(r'\\\n\s*', ' ', block).splitlines()
        variables = {}
        for line in lines:
            line = line.strip()
            variant = re.match(r'#\s*\.\.\.(.*)', line)
            if variant and found:  # the command above with other options
                script, args = found[-1]
                found.append((script, args + shlex.split(variant.group(1), comments=True)))
                continue
            for name, value in variables.items():
                line = line.replace(f'${name}', value)
            tokens = shlex.split(line, comments=True)
            define = re.match(r'^(?:export )?([A-Z_]+)=(.*)$', line)
            if define and len(tokens) == 1:
                variables[define.group(1)] = tokens[0].split('=', 1)[1]
                continue
            found += _python_call(tokens)
    prose = re.sub(r'```.*?```', '', text, flags=re.S)
    for span in re.findall(r'`([^`]+)`', prose):
        if span.startswith('python tools/'):
            found += _python_call(shlex.split(re.sub(r'\s+', ' ', span)))
    return found


def _python_call(tokens):
    while tokens and re.match(r'^[A-Z_]+=', tokens[0]):  # VAR=value python ...
        tokens = tokens[1:]
    if len(tokens) >= 2 and tokens[0] == 'python' and tokens[1].endswith('.py'):
        return [(tokens[1], tokens[2:])]
    return []


COMMANDS = _commands(open(RECORD).read())


class _Parsed(Exception):
    pass


def _parser(script, monkeypatch):
    """The argparse parser that ``script`` builds when run."""
    def capture(parser, *args, **kwargs):
        raise _Parsed(parser)

    monkeypatch.setattr(argparse.ArgumentParser, 'parse_args', capture)
    monkeypatch.setattr('sys.argv', [script])
    with pytest.raises(_Parsed) as parsed:
        runpy.run_path(osp.join(REPO, script), run_name='__main__')
    return parsed.value.args[0]


def _accepts(type_name, key):
    """Whether the module registered as ``type_name`` takes the argument ``key``."""
    import gan_mask_rcnn  # noqa: F401  (registers the project's modules)
    from mmengine.registry import init_default_scope
    from mmdet import registry
    init_default_scope('mmdet')
    for reg in (registry.MODELS, registry.LOOPS, registry.HOOKS, registry.OPTIMIZERS,
                registry.OPTIM_WRAPPERS, registry.DATASETS, registry.METRICS,
                registry.PARAM_SCHEDULERS, registry.TRANSFORMS):
        cls = reg.get(type_name)
        if cls is not None:
            return any(key in inspect.signature(c.__init__).parameters
                       for c in cls.__mro__ if c is not object)
    raise AssertionError(f'type {type_name!r} is not registered')


def _check_key(cfg, key, where):
    node, parts = cfg._cfg_dict, key.split('.')
    for i, part in enumerate(parts):
        if isinstance(node, dict) and part in node:
            node = node[part]
            continue
        assert i == len(parts) - 1 and isinstance(node, dict) and 'type' in node, (
            f'{key}: {".".join(parts[:i + 1])} is not a key of {where}')
        assert _accepts(node['type'], part), (
            f"{key}: {node['type']} takes no argument {part!r} ({where})")


def _configs(script, args):
    """The (baseline, GAN) config files a command's overrides apply to."""
    if '--configs' in args:
        i = args.index('--configs')
        return args[i + 1:i + 3]
    dataset = args[args.index('--dataset') + 1] if '--dataset' in args else 'shapes'
    return [osp.join(CONFIGS, f'{prefix}_r18_fpn_{dataset}-cpu.py')
            for prefix in ('mask-rcnn', 'gan-mask-rcnn')]


def test_every_file_the_record_names_exists():
    text = open(RECORD).read()
    paths = set(re.findall(r'(?<![\w./])((?:tools|tests|configs|projects)/[\w./-]+\.(?:py|sh|md|json|png))',
                           text))
    missing = sorted(p for p in paths if not osp.exists(osp.join(REPO, p)))
    assert not missing, missing


def test_the_record_has_commands():
    scripts = {script for script, _ in COMMANDS}
    assert len(COMMANDS) > 30 and {'tools/run_experiment.py',
                                   'tools/analysis_tools/pool_seeds.py'} <= scripts


@pytest.mark.parametrize('script, args', COMMANDS,
                         ids=[f'{i}-{osp.basename(s)}' for i, (s, _) in enumerate(COMMANDS)])
def test_record_command_runs_as_written(script, args, monkeypatch):
    assert osp.isfile(osp.join(REPO, script)), f'{script} does not exist'
    parser = _parser(script, monkeypatch)
    monkeypatch.undo()
    try:
        parser.parse_args(args)
    except SystemExit:
        pytest.fail(f'{script} rejects {shlex.join(args)}')
    for arg in args:
        if arg.startswith('configs/') and arg.endswith('.py'):
            assert osp.isfile(osp.join(REPO, arg)), arg
    overrides = {}
    for i, arg in enumerate(args):
        if arg in KEY_OPTIONS:
            for item in args[i + 1:]:
                if item.startswith('--'):
                    break
                overrides.setdefault(arg, []).append(item.split('=', 1)[0])
    if not overrides:
        return
    baseline, gan = (Config.fromfile(osp.join(REPO, f) if not osp.isabs(f) else f)
                     for f in _configs(script, args))
    for option, keys in overrides.items():
        for key in keys:
            _check_key(gan, key, f'{option} of {script}')
            if option == '--options':
                _check_key(baseline, key, f'{option} of {script} (baseline)')
