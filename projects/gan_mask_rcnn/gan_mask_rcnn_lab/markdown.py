"""The one Markdown table formatter of the tools and the lab."""
from typing import Iterable, Sequence


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table: ``header`` cells, then one line per row of cells.

    Cells are written with ``str``; a ``|`` or a line break inside a cell is
    replaced so that it cannot break the table.
    """
    def line(cells):
        return '| ' + ' | '.join(
            str(c).replace('|', '/').replace('\n', ' ') for c in cells) + ' |'

    return '\n'.join([line(header), '|' + '---|' * len(header)] + [line(r) for r in rows])
