"""Where a stage's work runs: `local` (threads of this process, the default) or `ray` (a Ray cluster).

  options.py    `EngineOptions` (--engine, --ray-address, --ray-shared-workspace, --gpus-per-worker), checks
  cluster.py    joining or starting Ray for one run, the one-line error for an unreachable cluster, nodes
  stream.py     results streamed back to the driver as tasks finish; Ctrl-C cancels and keeps what finished
  sample.py     `sample` as Ray CPU tasks over clips (workers return file bytes; the driver writes)
  collect.py    `collect` downloads spread over the nodes (per-node sleep and retries)
  preannotate.py  one model-holding Ray actor per GPU, fed a clip's sampled frames
  nodes.py      which node did how much: summaries and `status --json`'s `nodes`

The catalog keeps one writer: workers never open the workspace; they get their inputs (file bytes,
or a path on storage every node shares) and return outputs (file bytes plus metadata) that the
driver writes as results stream in. Nothing here imports Ray at module level.
"""

from avsbench_tools.engine.nodes import NODES_META, nodes_summary, read_nodes
from avsbench_tools.engine.options import ENGINES, EngineOptions, check_engine

__all__ = ["ENGINES", "NODES_META", "EngineOptions", "check_engine", "nodes_summary", "read_nodes"]
