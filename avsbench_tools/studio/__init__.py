"""Label Studio round trip: a local server (server.py), connections (connect.py), the brush RLE codec
(rle.py), the labelling config and push (config.py, push.py), pull and QA (pull.py, qa.py).

Nothing heavy is imported here: label_studio_sdk is imported inside the functions that need it. What the
catalog records of a project (tasks, predictions, pulled reviews) is written through its table access,
`catalog/studio.py` and `catalog/reviews.py`.
Each module's public names are re-exported below, one block per module (append yours).
"""

# ruff: noqa: F401, I001 - this file only re-exports, one block per module in the order they were added
from __future__ import annotations

# rle.py: the brush RLE codec (rle.encode, rle.decode, rle.to_mask)
from avsbench_tools.studio import rle  # noqa: E402
from avsbench_tools.studio.rle import ALPHA_THRESHOLD  # noqa: E402

# server.py, connect.py: the workspace's local server and which server a command talks to
from avsbench_tools.studio.connect import Connection, StudioUnreachable, connect  # noqa: E402
from avsbench_tools.studio.server import StudioInfo, start_studio, stop_studio, studio_status  # noqa: E402

# config.py, push.py: the labelling config and push (the function stays `studio.push.push`: re-exporting it
# here would hide the module of the same name)
from avsbench_tools.studio.labelling import check_config, instructions, label_config  # noqa: E402
from avsbench_tools.studio.push import PushOptions, PushResult  # noqa: E402

# review_set.py, pull.py, qa.py: annotations back as reviewed masks, and what the review changed (the
# functions stay `studio.pull.pull` and `studio.qa.qa`, like push)
from avsbench_tools.studio.review_set import CHOICE_RULE  # noqa: E402
from avsbench_tools.studio.pull import PullOptions, PullResult, store_tasks  # noqa: E402
from avsbench_tools.studio.qa import QaReport  # noqa: E402
from avsbench_tools.studio.qa import qa as qa_report  # noqa: E402 - qa(ws) for other stages (publish)
