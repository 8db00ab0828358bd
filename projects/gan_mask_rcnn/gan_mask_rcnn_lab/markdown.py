"""The one Markdown table formatter of the tools and the lab.

(``tools/gpu_check/report.py`` writes its own: it runs on a bare GPU machine
before anything is installed.)
"""
from typing import Iterable, List, Sequence


def markdown_row(cells: Sequence[object]) -> str:
    """One table line; a ``|`` or a line break inside a cell is replaced so that
    it cannot break the table."""
    return '| ' + ' | '.join(
        str(c).replace('|', '/').replace('\n', ' ') for c in cells) + ' |'


def markdown_header(header: Sequence[str]) -> List[str]:
    """The header line and the separator line under it."""
    return [markdown_row(header), '|' + '---|' * len(header)]


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table: ``header``, then one line per row of cells."""
    return '\n'.join(markdown_header(header) + [markdown_row(r) for r in rows])
