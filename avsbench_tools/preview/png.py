"""Which PNG files are ours: a preview carries the text chunk `Software: avs-tools preview`, and --out
replaces only such a file."""

from __future__ import annotations

import io
import struct
from pathlib import Path

from avsbench_tools.errors import UsageError
from avsbench_tools.fsutil import check_output_file

SOFTWARE = "avs-tools preview"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_text(path: Path, limit: int = 64 << 20) -> dict[str, str] | None:
    """The tEXt chunks of a PNG file, or None when it is not a readable PNG."""
    out: dict[str, str] = {}
    try:
        with open(path, "rb") as fh:
            if fh.read(8) != PNG_SIGNATURE:
                return None
            read = 8
            while read < limit:
                head = fh.read(8)
                if len(head) < 8:
                    return out
                n, kind = struct.unpack(">I4s", head)
                if kind == b"tEXt":
                    key, _, value = fh.read(n).partition(b"\0")
                    out[key.decode("latin-1")] = value.decode("latin-1")
                    fh.seek(4, io.SEEK_CUR)
                else:
                    fh.seek(n + 4, io.SEEK_CUR)
                read += n + 12
                if kind == b"IEND":
                    return out
    except OSError:
        return None
    return out


def is_our_png(path: Path) -> bool:
    """True when `path` is a preview avs-tools wrote (its `Software` text chunk says so)."""
    text = png_text(path)
    return bool(text) and text.get("Software", "").startswith(SOFTWARE)


def check_preview_out(path: Path) -> Path:
    """Refuse (one line) an --out the preview must not write: not .png, a folder, '.', a missing or
    unwritable folder, or an existing file that is not an earlier avs-tools preview."""
    path = Path(path)
    if path.name not in ("", ".", "..") and not path.is_dir() and path.suffix.lower() != ".png":
        raise UsageError(f"--out {path}: the preview is a PNG; name a .png file")
    return check_output_file(path, is_ours=path.is_file() and is_our_png(path))
