"""fsutil.atomic_write_private: the one writer of secrets (the studio's token and credentials, the scripted
annotator's password): 0600 whatever the umask, never readable by others even while it is written."""

from __future__ import annotations

import os
import stat

import pytest

from avsbench_tools.fsutil import atomic_write_private, atomic_write_text


@pytest.mark.parametrize("umask", [0o000, 0o022])
def test_private_file_is_owner_only_whatever_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        path = tmp_path / "token"
        atomic_write_text(path, "public\n")  # an existing file readable by others is replaced, mode and all
        atomic_write_private(path, "secret\n")
    finally:
        os.umask(old)
    assert path.read_text() == "secret\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["token"]  # no temporary left beside it
