"""stats: the papers' dataset tables for a release, as one self-contained HTML page with PNG plots.

    compute.py  compute_stats(root, fmt): counts from the metadata, mask statistics from sampled clips
    page.py     write_report(st, out): the HTML page and its plots (only our own earlier report is replaced)
"""

from avsbench_tools.stats.compute import MAX_MASKS, SOUNDING_LABEL, compute_stats
from avsbench_tools.stats.page import (
    GENERATOR,
    PLOT_NAMES,
    PLOT_TITLES,
    PUBLISHED,
    check_report_paths,
    is_stats_report,
    make_figures,
    plot_dir,
    published_rows,
    write_report,
)

__all__ = [
    "GENERATOR", "MAX_MASKS", "PLOT_NAMES", "PLOT_TITLES", "PUBLISHED", "SOUNDING_LABEL", "check_report_paths",
    "compute_stats", "is_stats_report", "make_figures", "plot_dir", "published_rows", "write_report",
]
