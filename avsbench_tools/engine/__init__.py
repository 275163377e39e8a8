"""Where a stage's work runs: `local` (threads of this process, the default) or `ray` (a Ray cluster).

  options.py    `EngineOptions` (--engine, --ray-address, --ray-shared-workspace, --gpus-per-worker), checks
  cluster.py    joining or starting Ray for one run, the one-line error for an unreachable cluster, nodes
  data.py       the stages as Ray Data pipelines (inputs read on the driver's node, `map` tasks, `map_batches`
                actor pools), rows streamed back (`iter_rows`); Ctrl-C shuts the run down and keeps what finished
  sample.py     `sample` as Ray Data CPU tasks over clips (workers return file bytes; the driver writes)
  collect.py    `collect` downloads spread over the nodes (SPREAD; per-node sleep and retries)
  preannotate.py  `map_batches` with a callable class: one model-holding actor per GPU, fed a clip's sampled frames
  nodes.py      which node did how much: summaries and `status --json`'s `nodes`

The catalog keeps one writer: workers never open the workspace; they get their inputs (file bytes,
or a path on storage every node shares) and return outputs (file bytes plus metadata) that the
driver writes as results stream in. Ray places, retries and restarts the work; no scheduler of our own.
Nothing here imports Ray at module level.
"""

from avsbench_tools.engine.nodes import NODES_META, nodes_summary, read_nodes
from avsbench_tools.engine.options import ENGINES, EngineOptions, check_engine

__all__ = ["ENGINES", "NODES_META", "EngineOptions", "check_engine", "nodes_summary", "read_nodes"]
