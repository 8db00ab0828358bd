"""The documents and configs speak of the project, not of where or how it was built:
nothing about the computers or the process behind it; the top README holds no commit-tied figure
(dated status lives in the experiment record); the package README links nothing
outside the repository.

Reference: the files' text."""
import glob
import os.path as osp
import re

import pytest

from conftest import REPO

DOCS = ['README.md', 'projects/gan_mask_rcnn/README.md',
        'projects/gan_mask_rcnn/results/README.md']
CONFIG_FILES = sorted(osp.relpath(p, REPO) for p in glob.glob(osp.join(REPO, 'configs', '**',
                                                                        '*.py'),
                                                              recursive=True))
# notes about the machines or the process behind the project
PROCESS = re.compile(r'2-core|this machine|\bsessions?\b|\bengineer\b|\bissue \d+|'
                     r'\.\./shared/|/work/|'
                     r'(?<!GPU )\bmachines?\b', re.I)  # a CPU is named by its kernel set


@pytest.mark.parametrize('path', DOCS + CONFIG_FILES + ['setup.cfg'])
def test_no_notes_about_machines_or_process(path):
    lines = open(osp.join(REPO, path)).read().splitlines()
    found = [f'{i}: {line}' for i, line in enumerate(lines, 1) if PROCESS.search(line)]
    assert not found, '\n'.join(found)


def test_top_readme_has_no_commit_tied_figure():
    text = open(osp.join(REPO, 'README.md')).read()
    commits = re.findall(r'\bat [0-9a-f]{7,40}\b|\bcommit [0-9a-f]{7,40}\b', text)
    assert not commits, commits
    assert 'results/README.md' in text  # the pointer to the dated record
    assert '## Checklist' in text


def test_package_readme_links_stay_inside_the_repository():
    readme = osp.join(REPO, 'projects', 'gan_mask_rcnn', 'README.md')
    text = open(readme).read()
    targets = re.findall(r'\]\(([^)#\s]+)', text) + re.findall(r'`(\.\.?/[^`\s]+)`', text)
    for target in targets:
        if re.match(r'\w+://', target):
            continue
        resolved = osp.normpath(osp.join(osp.dirname(readme), target))
        assert resolved.startswith(REPO + osp.sep), target
        assert osp.exists(resolved), target
