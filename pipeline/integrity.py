"""Saved model files are what was saved: a manifest of sizes and sha256, checked at load.

Every writer of a model directory records the files it wrote in `manifest.json`
(`record`); every loader checks the files it is about to read (`verify`), so a
truncated, damaged or swapped file is refused with its name and what differs,
never met later as a traceback from deep inside safetensors, skops or ONNX Runtime.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable

MANIFEST_FILE = "manifest.json"
_BLOCK = 1 << 20


class ModelFileError(ValueError):
    """A saved model's file is missing, damaged, or not the one its manifest records."""


def file_digest(path: Path) -> dict[str, int | str]:
    """Size and sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return {"size": path.stat().st_size, "sha256": digest.hexdigest()}


def _read(directory: Path) -> dict[str, dict[str, int | str]]:
    path = directory / MANIFEST_FILE
    if not path.exists():
        return {}
    try:
        files = json.loads(path.read_text(encoding="utf-8"))["files"]
        if not isinstance(files, dict):
            raise TypeError("files is not a mapping")
    except (ValueError, KeyError, TypeError) as err:
        raise ModelFileError(f"{path}: not a model manifest ({err})") from None
    return files


def record(directory: str | Path, names: Iterable[str]) -> None:
    """Add (or refresh) the size and sha256 of `names`, paths relative to `directory`."""
    directory = Path(directory)
    files = _read(directory)
    for name in names:
        files[name] = file_digest(directory / name)
    tmp = directory / f".{MANIFEST_FILE}.tmp"
    tmp.write_text(json.dumps({"files": dict(sorted(files.items()))}, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, directory / MANIFEST_FILE)


def verify(directory: str | Path, names: Iterable[str], folders: Iterable[str] = ()) -> None:
    """Check `names`, and every recorded file under `folders`, before they are read.

    A file the manifest lists must exist with the recorded size and sha256; a
    directory without a manifest (saved before manifests existed) is not checked.
    Raises ModelFileError naming the file.
    """
    directory = Path(directory)
    files = _read(directory)
    if not files:
        return
    prefixes = tuple(f"{folder.rstrip('/')}/" for folder in folders)
    for name in [*names, *(n for n in files if prefixes and n.startswith(prefixes))]:
        path = directory / name
        if name not in files:
            raise ModelFileError(f"{path}: not in {directory / MANIFEST_FILE}; the model directory was changed after it was saved")
        expected = files[name]
        if not path.is_file():
            raise ModelFileError(f"{path}: missing (the manifest records {expected['size']} bytes); the model directory is incomplete")
        size = path.stat().st_size
        if size != expected["size"]:
            raise ModelFileError(f"{path}: {size} bytes, saved as {expected['size']}: the file is truncated or was replaced")
        actual = file_digest(path)["sha256"]
        if actual != expected["sha256"]:
            raise ModelFileError(f"{path}: sha256 {actual} differs from the {expected['sha256']} recorded at save: the file is damaged or was replaced")
