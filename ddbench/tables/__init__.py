"""Tables rebuilt from records: mean ± std with n, in the paper's two layouts and an ablation layout.

``datasets`` (Table 1): methods x (dataset, IPC) on one architecture. ``archs`` (Table 2): methods x
architecture on one dataset and IPC. ``ablation``: the values of one option x (dataset, IPC, arch). The std
is the *sample* std (ddof=1, as pandas) over the cell's records; each table states the protocol of its
numbers and what its ± spans. The best measured mean of each column is bold; ``improvement`` adds each
cell's difference to the ``random`` row of the same column and protocol; ``reference`` adds published
numbers in their own rows, labelled ``(paper)`` (see :mod:`ddbench.reference`).

Modules: :mod:`.frame` (records -> a frame), :mod:`.model` (the :class:`Table` and its emphasis rule),
:mod:`.render` (one renderer per format), :mod:`.layouts` (datasets, archs), :mod:`.published` (best,
improvement, published rows), :mod:`.ablation`.
"""

from ddbench.tables.ablation import ablation_frame, ablation_summary, build_ablation_table, value_label, value_rank
from ddbench.tables.frame import DDOF, FRAME_COLUMNS, frame_notes, load_frame, protocol_label, summarise
from ddbench.tables.layouts import LAYOUTS, MATCH_METRICS, METRICS, REFERENCE_ROWS, build_table
from ddbench.tables.model import FORMATS, Coord, Row, Table, TableCell, check_choice
from ddbench.tables.published import BASELINE
from ddbench.tables.render import latex_escape

__all__ = ["BASELINE", "DDOF", "FORMATS", "FRAME_COLUMNS", "LAYOUTS", "MATCH_METRICS", "METRICS", "REFERENCE_ROWS",
           "Coord", "Row", "Table", "TableCell", "ablation_frame", "ablation_summary", "build_ablation_table",
           "build_table", "check_choice", "latex_escape", "load_frame", "protocol_label", "summarise",
           "frame_notes", "value_label", "value_rank"]
