"""Writes that survive kills and full disks, reads that name the file and line, and folder locks.

Every file a run or a sweep writes goes through `atomic_write`: the bytes go to a temporary file
beside the target, are flushed to disk, then renamed over it, so a reader sees the old file or the
new one, never half of either. When the disk is full or read-only the temporary file is removed
and `StorageError` names the path and the free space. This module imports no torch.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import math
import os
import re
import shutil
from pathlib import Path


class StorageError(OSError):
    """A file that cannot be written (full disk, read-only folder); the message names path and free space."""


class LockedError(OSError):
    """A folder already owned by another live process; the message names the folder and its pid."""


def free_space(path: Path) -> str:
    """Free space of the filesystem holding `path` (or its nearest existing parent), for messages."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        free = shutil.disk_usage(path).free
    except OSError:
        return "free space unknown"
    if free < 1024:
        return f"{free} B free"
    exponent = min(3, int(math.log(free, 1024)))
    return f"{free / 1024 ** exponent:.1f} {('B', 'KiB', 'MiB', 'GiB')[exponent]} free"


def storage_error(path: Path, err: OSError) -> StorageError:
    reason = os.strerror(err.errno) if err.errno else str(err)
    hint = {errno.ENOSPC: "; free some space or choose another --output_dir",
            errno.EDQUOT: "; over quota", errno.EROFS: "; the filesystem is read-only",
            errno.EACCES: "; no permission"}.get(err.errno, "")
    error = StorageError(f"{path}: cannot write ({reason}, {free_space(path)}){hint}")
    error.errno = err.errno  # kept for callers; str() stays the one-line message, without "[Errno N]"
    return error


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` all at once; on any failure the target is untouched and no temp file stays."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # per process: two writers never share a temp file
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())  # the rename must not reach the disk before the bytes do
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise storage_error(path, err) from None
    except BaseException:  # a signal mid-write: leave no temp file behind
        tmp.unlink(missing_ok=True)
        raise


def keep_copy(source: Path, target: Path) -> None:
    """`target` becomes a copy of `source` all at once (a hard link where the filesystem has them: no
    bytes copied; `source` is only ever replaced by a rename, never changed in place)."""
    source, target = Path(source), Path(target)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        try:
            os.link(source, tmp)
        except OSError as err:
            if err.errno in (errno.ENOENT, errno.ENOSPC, errno.EROFS):
                raise
            atomic_write(tmp, source.read_bytes())  # no hard links here (some network filesystems)
        os.replace(tmp, target)
        tmp.unlink(missing_ok=True)  # rename(2) does nothing when both names already link the same file
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise storage_error(target, err) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, text.encode("utf-8"))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def decode_utf8(raw: bytes, path: Path) -> str:
    """UTF-8 text (a BOM dropped); invalid bytes are reported as `<file>:<line>: ...`, not a codec traceback."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        column = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        raise ValueError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[err.start]:02x} at column {column})") from None


def read_text(path: Path) -> str:
    return decode_utf8(Path(path).read_bytes(), path)


class DuplicateKeyError(ValueError):
    """A JSON object that names one key twice (JSON parsers keep the last; we refuse to guess)."""

    def __init__(self, key: str):
        super().__init__(f"duplicate key {key!r} in one object")
        self.key = key


def _unique_object(pairs: list[tuple[str, object]]) -> dict:
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise DuplicateKeyError(key)
        seen[key] = value
    return seen


def loads_unique(text: str):
    """`json.loads`, but an object with a key given twice raises DuplicateKeyError."""
    return json.loads(text, object_pairs_hook=_unique_object)


def _line_of_second(text: str, key: str) -> int:
    """The line of the second `"key":` in a JSON text (where a duplicate key is reported)."""
    found = [match.start() for match in re.finditer(re.escape(json.dumps(key)) + r"\s*:", text)]
    return text.count("\n", 0, found[1]) + 1 if len(found) > 1 else 1


# --- strict JSON: one spelling of non-finite numbers
# JSON has no NaN or infinity: `jq` turns a bare NaN token into null and JavaScript's JSON.parse rejects it.
# Every JSON file this repo writes goes through `json_text`, which spells a non-finite float as the string
# "NaN", "Infinity" or "-Infinity": W&B's own spelling (`wandb.util.make_safe_for_json`), and what Python's
# float(), JavaScript's Number() and pandas.read_json (a float64 column) read back as the number. Not null:
# pandas would read null as NaN too, but null cannot tell NaN from inf, and in config.json null is an unset
# flag. Readers of measurements (history, summary, tables, forensics: `loads_record`, `read_json(...,
# measured=True)`) turn the three strings back into floats; records written before (bare NaN tokens) still read.
NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_MAY_HOLD_NONFINITE = re.compile(r'"(NaN|-?Infinity)"')


def nonfinite_text(number: float) -> str:
    """"NaN", "Infinity" or "-Infinity" for a non-finite float."""
    return "NaN" if math.isnan(number) else "Infinity" if number > 0 else "-Infinity"


def _encode_nonfinite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return nonfinite_text(value)
    if isinstance(value, dict):
        return {key: _encode_nonfinite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode_nonfinite(item) for item in value]
    return value


def decode_nonfinite(value):
    """The inverse of `json_text`'s spelling: "NaN", "Infinity", "-Infinity" (anywhere in `value`) as floats."""
    if isinstance(value, str):
        return NONFINITE.get(value, value)
    if isinstance(value, dict):
        return {key: decode_nonfinite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decode_nonfinite(item) for item in value]
    return value


def json_text(value, indent: int | None = None, default=None) -> str:
    """`value` as strict JSON (RFC 8259: no NaN or Infinity token), non-finite floats spelled as NONFINITE's
    strings, UTF-8 text kept as it is. `default` as in json.dumps (e.g. str for paths)."""
    options = dict(indent=indent, ensure_ascii=False, allow_nan=False, default=default)
    try:
        return json.dumps(value, **options)
    except ValueError:  # a non-finite float somewhere: rare, so the common path pays no walk over the value
        return json.dumps(_encode_nonfinite(value), **options)


def loads_record(text: str):
    """A JSON text of measurements (`loads_unique`), the non-finite spellings decoded back to floats."""
    value = loads_unique(text)
    return decode_nonfinite(value) if _MAY_HOLD_NONFINITE.search(text) else value


def read_json(path: Path, expect: type | None = None, measured: bool = False):
    """A JSON file; damage is reported as `<file>:<line>:<column>: ...` (a key given twice in one object
    too), and `expect` checks the top-level type. `measured`: a record of measurements (summary, table),
    whose "NaN", "Infinity" and "-Infinity" strings are numbers; configuration files (config.json,
    sweep.json) are read as written: their strings stay strings, and config.RANGES refuse non-finite flags."""
    path = Path(path)
    text = read_text(path)
    try:
        value = loads_record(text) if measured else loads_unique(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{err.lineno}:{err.colno}: invalid JSON ({err.msg})") from None
    except DuplicateKeyError as err:
        raise ValueError(f"{path}:{_line_of_second(text, err.key)}: {err}") from None
    if expect is not None and not isinstance(value, expect):
        raise ValueError(f"{path}: expected a JSON {expect.__name__}, got {type(value).__name__}")
    return value


# --- checked files: bytes that carry their own checksum
# A checked file is its payload followed by a 48-byte trailer: MAGIC, the payload's SHA-256 and its
# size. One file, one atomic rename: at every instant a reader or a resume sees the old file whole or
# the new one whole, and verifies exactly the bytes it then uses (no checksum file to fall out of step
# with). torch.load reads a checkpoint with its trailer unchanged: the zip reader ignores it.
MAGIC = b"NLUCHK01"
TRAILER = len(MAGIC) + 32 + 8


def checked_bytes(data: bytes) -> bytes:
    """`data` with its trailer."""
    return data + MAGIC + hashlib.sha256(data).digest() + len(data).to_bytes(8, "little")


def sidecar(path: Path) -> Path:
    """`<name>.sha256` beside `path`: where files written before trailers kept their checksum (read only)."""
    return Path(path).with_name(Path(path).name + ".sha256")


def write_checked(path: Path, data: bytes) -> None:
    """`data` with its checksum, in one atomic write. A checksum file left by an older version is removed
    after it (a kill in between leaves it stale, and the trailer, read first, wins)."""
    atomic_write(path, checked_bytes(data))
    sidecar(path).unlink(missing_ok=True)


def _legacy_problem(path: Path, raw: bytes) -> str | None:
    try:
        expected = json.loads(sidecar(path).read_text(encoding="utf-8"))
        digest, size = str(expected["sha256"]), int(expected["size"])
    except FileNotFoundError:
        return f"{path}: damaged file (no checksum: truncated, or not written by this tool)"
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return f"{sidecar(path)}: damaged checksum file"
    if len(raw) != size:
        return f"{path}: damaged file ({len(raw)} bytes, expected {size})"
    if hashlib.sha256(raw).hexdigest() != digest:
        return f"{path}: damaged file (SHA-256 does not match {sidecar(path).name})"
    return None


def check_bytes(path: Path, raw: bytes) -> tuple[bytes | None, str | None]:
    """(the verified payload, None) or (None, why not) for the bytes `raw` read from `path`."""
    tail = raw[-TRAILER:]
    if len(raw) < TRAILER or not tail.startswith(MAGIC):
        problem = _legacy_problem(path, raw)
        return (raw, None) if problem is None else (None, problem)
    payload, digest = raw[:-TRAILER], tail[len(MAGIC):len(MAGIC) + 32]
    size = int.from_bytes(tail[-8:], "little")
    if len(payload) != size:
        return None, f"{path}: damaged file ({len(payload)} payload bytes, expected {size})"
    if hashlib.sha256(payload).digest() != digest:
        return None, f"{path}: damaged file (its bytes do not match their SHA-256)"
    return payload, None


def read_checked(path: Path) -> tuple[bytes | None, str | None]:
    """(payload, None) or (None, why not): one read of one file, so what is verified is what is used,
    even while a writer replaces the file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, f"{path}: missing"
    except IsADirectoryError:
        return None, f"{path}: a folder, expected a checkpoint file"
    except OSError as err:
        return None, f"{path}: cannot read ({os.strerror(err.errno) if err.errno else err})"
    return check_bytes(path, raw)


def verify(path: Path) -> str | None:
    """None if `path` is intact (its bytes match their checksum), else why not (for messages)."""
    return read_checked(path)[1]


class FolderLock:
    """Exclusive ownership of a folder through `fcntl.flock` on `<folder>/<name>`.

    The kernel drops the lock when the holder exits, however it dies (SIGKILL included), so a stale
    lock file never blocks anyone; the file holds the owner's pid only to name it in the message.
    """

    def __init__(self, folder: Path, name: str, what: str = "folder"):
        self.path = Path(folder) / name
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> FolderLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise LockedError(f"{self.path.parent}: this {self.what} is in use by another process (pid {holder}); "
                              "wait for it to end or stop it") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __del__(self) -> None:  # an owner dropped without release (an error path): free the folder
        self.release()

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
