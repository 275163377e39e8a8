"""Where a stage's work runs: `local` (threads of this process, the default) or `ray` (a Ray cluster).

  options.py    `EngineOptions` (--engine, --ray-address, --ray-shared-workspace, --gpus-per-worker), checks
  cluster.py    joining or starting Ray for one run, the one-line error for an unreachable cluster, nodes
  ray_data.py   collect and preannotate as Ray Data pipelines (inputs read on the driver's node, `map` tasks,
                `map_batches` actor pools), rows streamed back (`iter_rows`); Ctrl-C shuts the run down and
                keeps what finished
  ray_tasks.py  a CPU stage as plain Ray tasks (`ray.remote`, `ray.wait`, `ray.cancel`): its workers need not
                import Ray Data
  sample.py     `sample` as a Ray task per clip (workers return file bytes; the driver writes)
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
