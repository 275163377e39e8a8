"""Label Studio round trip: a local server (server.py), connections (connect.py), the brush RLE codec
(rle.py), the labelling config and push (config.py, push.py), pull and QA (pull.py, qa.py).

Nothing heavy is imported here: label_studio_sdk is imported inside the functions that need it.
Each module's public names are re-exported below, one block per module (append yours).
"""

from __future__ import annotations
