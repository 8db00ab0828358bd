"""Check that what the GPU check carries, with what is installed, is complete.

``carry.py FOLDER`` reads the requirements of every wheel (``*.dist-info/METADATA``)
and sdist (``requirements/runtime.txt``, mmcv's layout) at the top of the folder and
prints each one that neither another carried package nor the running Python
provides, naming who needs it. ``carry.py --imports MODULE...`` imports each module
and names the missing one behind every failure. Either exits with status 1 on a
gap. Standard library, plus ``packaging`` (for markers and versions) where
installed. Example::

    python3 tools/gpu_check/carry.py gpu_carry
    python3 tools/gpu_check/carry.py --imports mmcv.ops mmdet
"""
import importlib
import argparse
import glob
import os.path as osp
import re
import sys
import tarfile
import zipfile
from importlib import metadata
from typing import Dict, List, NamedTuple, Optional, Tuple

try:
    from packaging.requirements import Requirement
except ImportError:  # the check still names missing packages, without versions
    Requirement = None

# A requirement met by another distribution of the same module (cv2).
ALTERNATIVES = {'opencv-python': ['opencv-python-headless', 'opencv-contrib-python',
                                  'opencv-contrib-python-headless']}


class Package(NamedTuple):
    """A carried distribution: its version, requirement strings and file."""
    version: str
    requires: List[str]
    file: str


def normalize(name: str) -> str:
    """PEP 503 name: ``Pillow`` -> ``pillow``, ``faster_coco_eval`` -> ``faster-coco-eval``."""
    return re.sub(r'[-_.]+', '-', name).lower()


def _wheel_package(path: str) -> Tuple[str, Package]:
    name, version = osp.basename(path).split('-')[:2]
    with zipfile.ZipFile(path) as zf:
        text = zf.read(f'{name}-{version}.dist-info/METADATA').decode()
    requires = [line.split(':', 1)[1].strip() for line in text.splitlines()
                if line.startswith('Requires-Dist:')]
    return normalize(name), Package(version, requires, osp.basename(path))


def _sdist_package(path: str) -> Tuple[str, Package]:
    stem = osp.basename(path)[:-len('.tar.gz')]
    name, version = stem.rsplit('-', 1)
    with tarfile.open(path) as tf:
        member = tf.extractfile(f'{stem}/requirements/runtime.txt')
        lines = member.read().decode().splitlines() if member else []
    requires = [line.strip() for line in lines if line.strip() and not line.startswith('#')]
    return normalize(name), Package(version, requires, osp.basename(path))


def carried_packages(folder: str) -> Dict[str, Package]:
    """The wheels and sdists at the top of ``folder``, by normalized name."""
    found = dict(_wheel_package(p) for p in sorted(glob.glob(osp.join(folder, '*.whl'))))
    found.update(_sdist_package(p) for p in sorted(glob.glob(osp.join(folder, '*.tar.gz'))))
    return found


def _installed_version(name: str) -> Optional[str]:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def unmet(requirement: str, carried: Dict[str, Package], installed=_installed_version
          ) -> Optional[str]:
    """Why ``requirement`` is not met, or None when it is (or does not apply here).

    Args:
        requirement (str): A PEP 508 string, e.g. ``matplotlib >=2.1.0``.
        carried (dict): ``carried_packages`` of the carry folder.
        installed (callable): Version of an installed distribution, or None.
    """
    if Requirement is None:
        if 'extra ==' in requirement:
            return None
        name, spec = re.match(r'\s*([A-Za-z0-9._-]+)(.*)', requirement.split(';')[0]).groups()
        version_ok = lambda v: True  # noqa: E731 (no packaging: any version will do)
    else:
        req = Requirement(requirement)
        if req.marker is not None and not req.marker.evaluate({'extra': ''}):
            return None
        name, spec = req.name, str(req.specifier)
        version_ok = lambda v: req.specifier.contains(v, prereleases=True)  # noqa: E731
    for candidate in [name] + ALTERNATIVES.get(normalize(name), []):
        key = normalize(candidate)
        version = carried[key].version if key in carried else installed(candidate)
        if version is not None and version_ok(version):
            return None
        if version is not None:
            return f'{name}{spec}: found {candidate} {version}'
    return f'{name}{spec}: neither carried nor installed'


def check(folder: str, installed=_installed_version) -> List[str]:
    """One line per unmet requirement of the carried packages, naming who needs it."""
    carried = carried_packages(folder)
    lines = []
    for name, package in carried.items():
        for requirement in package.requires:
            why = unmet(requirement, carried, installed)
            if why:
                lines.append(f'{why} (needed by {package.file})')
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
    parser.add_argument('folder', nargs='?', help='the carry folder (gpu_carry)')
    parser.add_argument('--imports', nargs='+', default=[], metavar='MODULE')
    parser.add_argument('--carried-only', action='store_true',
                        help='count nothing as installed: list what the GPU machine must have')
    args = parser.parse_args()
    if args.imports:
        failures = import_failures(args.imports)
        for line in failures:
            print('FAILED ' + line)
        if failures:
            sys.exit(f'{len(failures)} of {len(args.imports)} imports failed')
        return
    if not args.folder:
        parser.error('give the carry folder, or --imports MODULE...')
    carried = carried_packages(args.folder)
    if not carried:
        sys.exit(f'no wheels or sdists in {args.folder!r}: run tools/gpu_check.sh prepare')
    print('carried: ' + ', '.join(f'{n} {p.version}' for n, p in carried.items()))
    if args.carried_only:
        needs = sorted({line.split(':')[0] for line in check(args.folder, lambda name: None)})
        print('the GPU machine must provide: ' + ', '.join(needs))
        return
    missing = check(args.folder)
    for line in missing:
        print('MISSING ' + line)
    if missing:
        sys.exit(f'{len(missing)} requirements unmet: add them to the wheel list of '
                 'tools/gpu_check.sh prepare')
    print('every requirement of the carried packages is carried or installed')


if __name__ == '__main__':
    main()
