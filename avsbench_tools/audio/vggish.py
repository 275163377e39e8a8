"""The VGGish network (torch), laid out like torchvggish so its released state dict loads as is.

`vggish-10086976.pth` from the torchvggish release holds `features.*` (4 conv blocks) and
`embeddings.*` (3 linear layers). Embeddings here are the raw 128-d outputs (no PCA/quantisation),
which is what AVSBench's audio branch consumes. torch is imported only when these are called.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avsbench_tools.checkpoints import checkpoint_hash, resolve_device
from avsbench_tools.errors import AvsError, UsageError, require


def build_vggish():
    """An untrained VGGish: conv 64-M-128-M-256-256-M-512-512-M, then 12288-4096-4096-128."""
    torch = require("torch", "models")
    nn = torch.nn

    class VGGish(nn.Module):
        def __init__(self):
            super().__init__()
            layers, cin = [], 1
            for v in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M"):
                if v == "M":
                    layers.append(nn.MaxPool2d(2, 2))
                else:
                    layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=True)]
                    cin = v
            self.features = nn.Sequential(*layers)
            self.embeddings = nn.Sequential(nn.Linear(512 * 4 * 6, 4096), nn.ReLU(True), nn.Linear(4096, 4096),
                                            nn.ReLU(True), nn.Linear(4096, 128), nn.ReLU(True))

        def forward(self, x):  # x: [B, 1, 96, 64]
            x = self.features(x)
            x = x.permute(0, 2, 3, 1).contiguous()  # TF's NHWC flatten order, as the released weights expect
            return self.embeddings(x.flatten(1))

    return VGGish()


def load_vggish(path: Path, device: str = "cpu"):
    """-> (model in eval mode on device, sha256 prefix of the weights file). One-line errors."""
    torch = require("torch", "models")
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--vggish-weights {path}: no such file")
    device = resolve_device(device)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's input error
        raise AvsError(f"{path}: not a readable torch state dict ({type(exc).__name__})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    model = build_vggish()
    if not isinstance(state, dict):
        raise AvsError(f"{path}: expected a VGGish state dict, found {type(state).__name__}")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise AvsError(f"{path}: not VGGish weights ({first})") from exc
    return model.eval().to(device), checkpoint_hash(path)


def embed(model, examples: np.ndarray, device: str = "cpu") -> np.ndarray:
    """[T, 1, 96, 64] log-mel examples -> [T, 128] float32 embeddings."""
    torch = require("torch", "models")
    with torch.inference_mode():
        x = torch.from_numpy(np.ascontiguousarray(examples, dtype=np.float32)).to(device)
        return model(x).float().cpu().numpy()
