#!/usr/bin/env bash
# Make PyPI's torchcodec wheel (a CUDA 13 build) load on a CPU-only torch, for the CPU decoders.
# Its extensions link libcudart.so.13, libnvrtc.so.13, libc10_cuda.so and libtorch_cuda.so, none of
# which a CPU torch has, so `import torchcodec` fails and with it the Audio feature of `datasets`.
# This builds stubs for exactly the CUDA symbols the extensions use (each CUDA runtime call returns
# cudaErrorInsufficientDriver, the fat-binary registration at load time is a no-op, the AOTI CUDA
# stream call returns an error), puts them in torchcodec.libs/ and points the extensions there.
# The CPU decoders never call them. Idempotent. Needs gcc, nm and patchelf.
# Usage: fix-torchcodec-cpu.sh [path/to/venv/bin/python]
set -euo pipefail
PY=${1:-python}
SP=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
TC=$SP/torchcodec; LIBS=$SP/torchcodec.libs; TORCH_LIB=$SP/torch/lib
PATCHELF=$(dirname "$PY")/patchelf; [ -x "$PATCHELF" ] || PATCHELF=patchelf
mkdir -p "$LIBS"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
nm -D --undefined-only "$TC"/*.so | awk '{print $2}' | sed 's/@.*//' | sort -u > "$tmp/undef"
nm -D --defined-only "$TORCH_LIB"/*.so 2>/dev/null | awk '{print $3}' | sort -u > "$tmp/torch"
{ echo 'static void* fat[4];'
  grep -E '^(__)?cuda' "$tmp/undef" | while read -r s; do
    case "$s" in
      __cudaRegisterFatBinary) echo "void** $s(void* f){ (void)f; return fat; }";;
      cudaGetErrorString) echo "const char* $s(int e){ (void)e; return \"CUDA is not available (CPU-only torch)\"; }";;
      __cuda*) echo "int $s(void){ return 0; }";;
      *) echo "int $s(void){ return 35; }";;  # cudaErrorInsufficientDriver
    esac
  done; } > "$tmp/cudart.c"
echo 'libcudart.so.13 { global: *; };' > "$tmp/cudart.map"
gcc -shared -fPIC -O2 -Wl,-soname,libcudart.so.13 -Wl,--version-script="$tmp/cudart.map" -o "$LIBS/libcudart.so.13" "$tmp/cudart.c"
# torch symbols the extensions take from libtorch_cuda (absent from a CPU torch): each returns an error
# They live in a library of their own name, added to each extension's needs: a libtorch_cuda.so stub that
# torchvision's relink loaded first (same soname) would otherwise hide them.
comm -23 <(grep -iE '^aoti_torch.*cuda' "$tmp/undef") "$tmp/torch" \
  | while read -r s; do echo "int $s(void){ return 1; }"; done > "$tmp/torch_cuda.c"
gcc -shared -fPIC -O2 -Wl,-soname,libtorchcodec_cpu_stubs.so -o "$LIBS/libtorchcodec_cpu_stubs.so" "$tmp/torch_cuda.c"
gcc -shared -fPIC -Wl,-soname,libtorch_cuda.so -o "$LIBS/libtorch_cuda.so" -x c /dev/null
gcc -shared -fPIC -Wl,-soname,libc10_cuda.so -o "$LIBS/libc10_cuda.so" -x c /dev/null
gcc -shared -fPIC -Wl,-soname,libnvrtc.so.13 -o "$LIBS/libnvrtc.so.13" -x c /dev/null
for so in "$TC"/*.so; do
  if ! "$PATCHELF" --print-needed "$so" | grep -qx 'libtorchcodec_cpu_stubs.so'; then
    "$PATCHELF" --add-needed libtorchcodec_cpu_stubs.so "$so"
  fi
  "$PATCHELF" --set-rpath '$ORIGIN:$ORIGIN/../torchcodec.libs:$ORIGIN/../torch/lib' "$so"
done
"$PY" -c 'import torch, torchvision, torchcodec; from torchcodec.decoders import AudioDecoder; print("torchcodec", torchcodec.__version__, "CPU decoders OK")'
