"""avs-tools: build audio-visual segmentation datasets (AVSBench S4/MS3/AVSS, Ref-AVS).

Importing this package is cheap: no torch, no transformers, no media libraries. Each stage
module imports what it needs inside its functions.
"""

__version__ = "0.1.0"

from avsbench_tools.errors import AvsError, UsageError  # noqa: E402

__all__ = ["__version__", "AvsError", "UsageError"]
