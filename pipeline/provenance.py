"""Where a run came from: the git commit and the data version."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Callable


def git_commit(directory: str | Path) -> str:
    """The commit checked out in `directory`, with `-dirty` if tracked files changed.

    Returns "unknown" outside a git work tree (e.g. an unpacked release).
    """
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=directory, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (subprocess.CalledProcessError, FileNotFoundError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_version(path: str | Path, include: Callable[[str], bool] | None = None) -> str:
    """DVC's hash of a file or directory (`<md5>` or `<md5>.dir`), as dvc.lock records it.

    A directory's hash is the MD5 of the JSON list of its files' relative paths
    and MD5s, sorted by path, the way DVC builds it, so this tag can be matched
    against `dvc.lock` and `dvc data status`. `include` keeps only the files whose
    relative path it accepts (then the hash is no longer DVC's).
    """
    path = Path(path)
    if path.is_file():
        return _md5(path)
    entries = [
        {"md5": _md5(f), "relpath": f.relative_to(path).as_posix()}
        for f in sorted(path.rglob("*"), key=lambda p: p.relative_to(path).as_posix())
        if f.is_file() and (include is None or include(f.relative_to(path).as_posix()))
    ]
    listing = json.dumps(entries, sort_keys=True).encode("utf-8")
    return hashlib.md5(listing).hexdigest() + ".dir"
