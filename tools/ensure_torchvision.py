"""Make sure torchvision imports next to the installed torch.

PyPI has no CPU build of torchvision: on a machine with the CPU torch wheel its CUDA build fails
to import ("operator torchvision::nms does not exist"). Only in that case this runs
fix-torchvision-cpu.sh, which relinks the wheel against stub CUDA symbols. On a normal machine
(CUDA torch, or a working torchvision) it does nothing.
"""

import subprocess
import sys
from pathlib import Path


def _works() -> bool:
    code = "import torch, torchvision; from torchvision.ops import nms"
    return subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def main() -> int:
    if _works():
        print("torchvision: OK")
        return 0
    probe = subprocess.run([sys.executable, "-c", "import torch; print(torch.version.cuda is None)"],
                           capture_output=True, text=True)
    if probe.stdout.strip() != "True":
        print("torchvision does not import and torch is not a CPU build: reinstall torchvision", file=sys.stderr)
        return 1
    script = Path(__file__).with_name("fix-torchvision-cpu.sh")
    env_bin = str(Path(sys.executable).parent)
    import os
    env = dict(os.environ, PATH=env_bin + os.pathsep + os.environ.get("PATH", ""))
    subprocess.run(["bash", str(script), sys.executable], check=True, env=env)
    if not _works():
        print("torchvision still fails to import after the relink", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
