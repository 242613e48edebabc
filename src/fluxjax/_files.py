"""Safe files: atomic writes, and a reader of safetensors files that checks everything.

A safetensors file is an 8-byte little-endian header length ``N``, ``N`` bytes of JSON (each
tensor's dtype, shape and byte range, plus a ``__metadata__`` dict of strings), then the
tensor bytes. fluxjax puts its own JSON (structure, hyperparameters, counters, checksums)
in ``__metadata__["fluxjax"]``. Nothing in the file is executed on load.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
import zlib
from typing import Any

import numpy as np

MAGIC = "fluxjax-checkpoint"
VERSION = 1
_MAX_HEADER = 100_000_000


class CheckpointError(ValueError):
    """A file that cannot be loaded: truncated, corrupted, not a fluxjax checkpoint, or saved
    from another model. The message names the file and what is wrong.

    >>> import fluxjax as fx
    >>> issubclass(fx.CheckpointError, ValueError)
    True
    """


def atomic_write(path: str, write: Any) -> None:
    """Write a file to ``path`` so that a crash at any moment leaves either the old file or
    the new one, whole: ``write(tmp)`` fills a temporary file in the same folder, which is
    fsynced and renamed over ``path``; then the folder is fsynced (so the rename itself
    survives a power loss). ``write`` may also be ``bytes``."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        if isinstance(write, bytes):
            with os.fdopen(fd, "wb") as f:
                f.write(write)
        else:
            os.close(fd)
            write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_folder(folder)


def fsync_folder(folder: str) -> None:
    """fsync a folder's entry list (where the platform allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


try:  # the same CRC-32, with SIMD: ~7x faster than zlib's (pip install 'fluxjax[fast]')
    from isal.isal_zlib import crc32 as _crc32
except ImportError:  # pragma: no cover - depends on the environment
    _crc32 = zlib.crc32


def crc(a: np.ndarray) -> int:
    """CRC-32 of an array's bytes (C order).

    >>> import numpy as np, zlib
    >>> crc(np.arange(4, dtype=np.uint8)) == zlib.crc32(bytes([0, 1, 2, 3]))
    True
    """
    return _crc32(_c_order(a).reshape(-1).view(np.uint8))


def _c_order(a: np.ndarray) -> np.ndarray:
    """``a`` in C order, keeping its shape (``np.ascontiguousarray`` makes 0-d arrays 1-d)."""
    a = np.asarray(a)
    return a if a.flags.c_contiguous else a.copy(order="C")


class _Enc(json.JSONEncoder):
    def default(self, o: Any) -> Any:
        if isinstance(o, np.ndarray):
            return {"__ndarray__": o.tolist(), "dtype": str(o.dtype)}
        if isinstance(o, np.generic):
            return o.item()
        return super().default(o)


def _dec(d: dict[str, Any]) -> Any:
    if "__ndarray__" in d:
        return np.asarray(d["__ndarray__"], dtype=d["dtype"])
    return d


def write(path: str, tensors: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Write a safetensors file holding ``tensors`` and fluxjax's ``meta`` (with a CRC-32 of
    every tensor) to ``path``, atomically. The tensors go straight from memory to the file
    (``safetensors.numpy.save_file``), without an intermediate copy of the whole file."""
    from safetensors.numpy import save_file

    meta = {**meta, "format": MAGIC, "version": VERSION}
    contiguous = {k: _c_order(a) for k, a in tensors.items()}
    meta["crc"] = _crcs(contiguous)
    text = json.dumps(meta, cls=_Enc)
    atomic_write(path, lambda tmp: save_file(contiguous, tmp, metadata={"fluxjax": text}))


def _crcs(arrays: dict[str, np.ndarray]) -> dict[str, int]:
    """CRC-32 of each array, the large ones on a thread each (zlib releases the GIL)."""
    big = [k for k, a in arrays.items() if a.nbytes >= 1 << 22]
    out = {k: crc(a) for k, a in arrays.items() if k not in big}
    if len(big) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(len(big), os.cpu_count() or 1)) as pool:
            out.update(zip(big, pool.map(lambda k: crc(arrays[k]), big)))
    else:
        out.update({k: crc(arrays[k]) for k in big})
    return {k: out[k] for k in arrays}


def read_header(path: str) -> tuple[dict[str, Any], int]:
    """The JSON header of a safetensors file and its total expected size; raises
    ``CheckpointError`` for a file too short, not safetensors, or truncated."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise CheckpointError(
                    f"{path} is truncated: {size} bytes, less than the 8-byte header length "
                    "every safetensors file starts with. Load an earlier checkpoint."
                )
            (n,) = struct.unpack("<Q", head)
            if n > min(size - 8, _MAX_HEADER):
                raise CheckpointError(
                    f"{path} is truncated or not a safetensors file: its first 8 bytes announce "
                    f"a {n}-byte header, but the file has {size} bytes."
                )
            raw = f.read(n)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path} does not exist; check the name (fx.Checkpointer.latest(folder) finds "
            "the newest checkpoint in a folder)."
        ) from None
    except IsADirectoryError:
        raise IsADirectoryError(f"{path} is a folder; pass the path of a file.") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(
            f"{path} is not a safetensors file (its header is not JSON); fx.load reads the "
            "files fx.save writes."
        ) from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} is not a safetensors file (its header is not a dict).")
    end = 8 + n
    for name, t in header.items():
        if name == "__metadata__":
            continue
        try:
            end = max(end, 8 + n + int(t["data_offsets"][1]))
        except (TypeError, KeyError, IndexError, ValueError):
            raise CheckpointError(
                f"{path} is corrupted: tensor {name!r} has no byte range."
            ) from None
    if size < end:
        raise CheckpointError(
            f"{path} is truncated: its tensors need {end} bytes, the file has {size} (the "
            "write was interrupted, or the copy is incomplete). Load an earlier checkpoint."
        )
    return header, end


def read(path: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """fluxjax's metadata and the tensors of a checkpoint, every checksum verified."""
    header, _ = read_header(path)
    meta = _meta(path, header)
    from safetensors.numpy import load

    try:
        with open(path, "rb") as f:
            tensors = load(f.read())
    except Exception as e:  # the library's own message, with the file named
        raise CheckpointError(
            f"{path} is corrupted: safetensors could not read it ({e})."
        ) from None
    sums = meta.get("crc", {})
    for name, a in tensors.items():
        if name not in sums or sums[name] != crc(a):
            raise CheckpointError(
                f"{path} is corrupted: the bytes of tensor {name!r} do not match the checksum "
                "saved with them. Load an earlier checkpoint."
            )
    missing = [k for k in sums if k not in tensors]
    if missing:
        raise CheckpointError(f"{path} is corrupted: tensor {missing[0]!r} is missing.")
    return meta, tensors


def _meta(path: str, header: dict[str, Any]) -> dict[str, Any]:
    md = header.get("__metadata__")
    text = md.get("fluxjax") if isinstance(md, dict) else None
    if text is None:
        names = [k for k in header if k != "__metadata__"][:4]
        raise CheckpointError(
            f"{path} is a safetensors file but not a fluxjax checkpoint (no fluxjax metadata; "
            f"it holds tensors {', '.join(map(repr, names)) or '(none)'}). Read its arrays with "
            "safetensors.numpy.load_file, and copy them in with fx.loadmodel."
        )
    try:
        meta = json.loads(text, object_hook=_dec)
    except (json.JSONDecodeError, TypeError, ValueError):
        raise CheckpointError(f"{path} is corrupted: its fluxjax metadata is not JSON.") from None
    if not isinstance(meta, dict) or meta.get("format") != MAGIC:
        raise CheckpointError(f"{path} is corrupted: its fluxjax metadata has no format tag.")
    if meta.get("version") != VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {meta.get('version')!r}; this fluxjax reads "
            f"version {VERSION}. Load it with the fluxjax version that saved it."
        )
    return meta
