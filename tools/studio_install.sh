#!/usr/bin/env bash
# make studio-install: Label Studio's own virtual environment (it pins ~1 GB of Django packages, so it
# never shares the toolkit's .venv; avs-tools talks to it over HTTP and finds its binary there).
#   bash tools/studio_install.sh [VENV]     (default .studio-venv; PYTHON=python3.11 to pick the interpreter)
# Idempotent: a stamp file records the installed version; re-running with it present does nothing.
set -euo pipefail

VENV="${1:-.studio-venv}"
PYTHON="${PYTHON:-python3}"
VERSION="1.23.2"
STAMP="$VENV/.installed-label-studio-$VERSION"

if [ -f "$STAMP" ] && [ -x "$VENV/bin/label-studio" ]; then
    echo "label-studio $VERSION is installed in $VENV"
    exit 0
fi
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "label-studio==$VERSION"
# the binary imports and reports the pinned version (no server is started, nothing is written)
"$VENV/bin/python" -c "import importlib.metadata as m, sys; v = m.version('label-studio'); \
sys.exit(0 if v == '$VERSION' else f'label-studio {v} installed, expected $VERSION')"
touch "$STAMP"
echo "label-studio $VERSION installed in $VENV ($VENV/bin/label-studio)"
