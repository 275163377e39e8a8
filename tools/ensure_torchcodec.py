"""Make sure torchcodec (the audio decoder of the `datasets` library) imports next to the installed torch.

PyPI's torchcodec is a CUDA build: next to the CPU torch wheel its extensions fail to load (they link
libcudart.so.13, libtorch_cuda.so, ...), and `datasets` cannot decode an Audio feature. Only in that
case this runs fix-torchcodec-cpu.sh, which gives the extensions stub CUDA libraries (the CPU decoders
never call them). On a normal machine (CUDA torch, or a working torchcodec) it does nothing.
torchcodec also needs the system FFmpeg libraries (libavcodec 4 to 8; Debian: apt install ffmpeg).
"""

import os
import subprocess
import sys
from pathlib import Path

CODE = "import torch, torchvision, torchcodec; from torchcodec.decoders import AudioDecoder"  # torchvision first, as in the tests


def _works() -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True)


def main() -> int:
    if _works().returncode == 0:
        print("torchcodec: OK")
        return 0
    probe = subprocess.run([sys.executable, "-c", "import torch; print(torch.version.cuda is None)"],
                           capture_output=True, text=True)
    if probe.stdout.strip() != "True":
        print("torchcodec does not import and torch is not a CPU build: reinstall torchcodec", file=sys.stderr)
        return 1
    script = Path(__file__).with_name("fix-torchcodec-cpu.sh")
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    subprocess.run(["bash", str(script), sys.executable], check=True, env=env)
    res = _works()
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["?"])[-1]
        print(f"torchcodec still fails to import after the relink ({last}); it needs the system FFmpeg "
              "libraries (Debian: apt install ffmpeg)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
