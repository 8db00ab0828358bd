"""Check the GPU check's install: ``pip check`` on what was carried, and the imports.

``carry.py --pip-check FOLDER`` runs ``pip check`` and reports each broken
requirement of a package carried in FOLDER (its wheels and sdists), except one that
an installed alternative meets (``opencv-python`` by ``opencv-python-headless``,
which mmengine's wheel cannot name). ``carry.py --imports MODULE...`` imports each
module and names the missing one behind every failure. Either exits with status 1
on a gap. Standard library only. Example::

    PYTHONPATH=site python3 tools/gpu_check/carry.py --pip-check gpu_carry
    python3 tools/gpu_check/carry.py --imports mmcv.ops mmdet
"""
import argparse
import glob
import importlib
import os.path as osp
import re
import subprocess
import sys
from importlib import metadata
from typing import List, Set

# A requirement met by another distribution of the same module (cv2).
ALTERNATIVES = {'opencv-python': ['opencv-python-headless', 'opencv-contrib-python',
                                  'opencv-contrib-python-headless']}


def normalize(name: str) -> str:
    """PEP 503 name: ``Pillow`` -> ``pillow``, ``faster_coco_eval`` -> ``faster-coco-eval``."""
    return re.sub(r'[-_.]+', '-', name).lower()


def carried_names(folder: str) -> Set[str]:
    """Normalized names of the wheels and sdists at the top of ``folder``."""
    files = glob.glob(osp.join(folder, '*.whl')) + glob.glob(osp.join(folder, '*.tar.gz'))
    return {normalize(re.split(r'-\d', osp.basename(f), maxsplit=1)[0]) for f in files}


def _installed(name: str) -> bool:
    try:
        metadata.version(name)
        return True
    except metadata.PackageNotFoundError:
        return False


def broken_requirements(pip_check_output: str, carried: Set[str], installed=_installed
                        ) -> List[str]:
    """``pip check``'s lines about carried packages that no installed alternative meets.

    Args:
        pip_check_output (str): What ``pip check`` printed, e.g. ``mmengine 0.10.7
            requires opencv-python, which is not installed.``
        carried (set[str]): ``carried_names`` of the carry folder.
        installed (callable): Whether a distribution is installed.
    """
    lines = []
    for line in pip_check_output.splitlines():
        words = line.split()
        if len(words) < 4 or normalize(words[0]) not in carried:
            continue
        missing = re.match(r'[A-Za-z0-9._-]+', words[3].rstrip(','))
        alternatives = ALTERNATIVES.get(normalize(missing.group(0)) if missing else '', [])
        if 'not installed' in line and any(installed(a) for a in alternatives):
            continue
        lines.append(line.strip())
    return lines


def import_failures(modules: List[str]) -> List[str]:
    """Import each module; one line per failure, naming a missing module if that is why."""
    lines, versions = [], []
    for module in modules:
        try:
            imported = importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 (any failure is reported, none stops)
            missing = getattr(exc, 'name', None) if isinstance(exc, ImportError) else None
            hint = (f' -> {missing!r} is missing: carry it (tools/gpu_check.sh prepare)'
                    if missing and missing.split('.')[0] != module.split('.')[0] else '')
            lines.append(f'import {module}: {type(exc).__name__}: {exc}{hint}')
        else:
            version = getattr(imported, '__version__', '')
            print(f'import {module}: ok {version}'.rstrip())
            versions += [f'{module} {version}'] if version and '.' not in module else []
    if not lines:
        print(f'all {len(modules)} imports ok: ' + ', '.join(versions))
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--pip-check', metavar='FOLDER', help='the carry folder (gpu_carry)')
    parser.add_argument('--imports', nargs='+', default=[], metavar='MODULE')
    args = parser.parse_args()
    if args.imports:
        failures = import_failures(args.imports)
        for line in failures:
            print('FAILED ' + line)
        if failures:
            sys.exit(f'{len(failures)} of {len(args.imports)} imports failed')
        return
    if not args.pip_check:
        parser.error('give --pip-check FOLDER or --imports MODULE...')
    out = subprocess.run([sys.executable, '-m', 'pip', 'check', '--disable-pip-version-check'],
                         capture_output=True, text=True)
    broken = broken_requirements(out.stdout, carried_names(args.pip_check))
    for line in broken:
        print('BROKEN ' + line)
    if broken:
        sys.exit(f'{len(broken)} requirements of carried packages unmet: carry them (the '
                 'wheel list of tools/gpu_check.sh prepare)')
    print(f'pip check: every requirement of the {len(carried_names(args.pip_check))} '
          'carried packages is met')


if __name__ == '__main__':
    main()
