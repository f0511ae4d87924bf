"""Files under ``state_dir``: written so that a crash, a full disk or a stray edit never costs the
state they hold.

Each file is replaced atomically (temp file, fsync, rename, directory fsync), readable by the
exporter's user only (0600). The generation it replaces is kept as ``<file>.prev``. Reading
falls back to ``.prev`` when the newest file cannot be read or parsed, and moves such a file aside
(``<file>.bad-<UTC time>``) instead of letting the next write destroy it: what it held may still
be recovered by hand. Reading never raises: a state file is a convenience, never a reason to fail
a collection. Nor does it ever wait: a FIFO, a device, a directory or a symbolic link where a
state file belongs is opened without blocking or following, found not to be a regular file, and
moved aside like any other unusable file.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar, overload

log = logging.getLogger(__name__)

T = TypeVar("T")

PREV_SUFFIX = ".prev"
# The largest state file read. Counter state for hundreds of inverters is well under 1 MiB; a
# file past this is not ours, and reading it whole would cost memory.
MAX_STATE_BYTES = 16 * 1024 * 1024


def safe_name(text: str) -> str:
    """``text`` as one file-name component: letters, digits, ``.``, ``_`` and ``-`` kept, every
    other character an ``_``, and no leading dot (no hidden file, no ``..``)."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", text)
    return "_" + name[1:] if name.startswith(".") else name or "_"


def prev_path(path: Path) -> Path:
    """Where the previous generation of ``path`` is kept."""
    return path.with_name(path.name + PREV_SUFFIX)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: the old file or the new one, never half of one, mode 0600.

    The generation replaced becomes ``<path>.prev``. Creates the directory (0700) if needed.
    Raises ``OSError``; the caller decides whether that is worth a warning.
    """
    _make_dirs(path.parent)
    # mkstemp creates the file 0600 with O_EXCL: no symlink is followed, no other user reads it.
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        _keep_previous(path)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _make_dirs(directory: Path) -> None:
    """``directory`` and every missing parent, each 0700 (``mkdir(parents=True)`` would give the
    parents the default mode: ``state_dir`` itself 0755 when the first file is a cached token)."""
    missing = [d for d in (directory, *directory.parents) if not d.exists()]
    for d in reversed(missing):
        d.mkdir(mode=0o700, exist_ok=True)


def _keep_previous(path: Path) -> None:
    """Make ``<path>.prev`` the current generation before it is replaced. A hard link keeps
    ``path`` in place all along; where links are not possible, the rename leaves a moment
    without ``path``, which ``read_state`` covers by reading ``.prev``."""
    prev = prev_path(path)
    link = prev.with_name(f".{prev.name}.{os.getpid()}.tmp")
    try:
        link.unlink(missing_ok=True)
        os.link(path, link)
        os.replace(link, prev)
    except FileNotFoundError:
        return  # the first generation
    except OSError:
        link.unlink(missing_ok=True)
        try:
            os.replace(path, prev)
        except FileNotFoundError:
            return


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@overload
def read_state(path: Path) -> bytes | None: ...


@overload
def read_state(path: Path, parse: Callable[[bytes], T]) -> T | None: ...


def read_state(path: Path, parse: Callable[[bytes], object] | None = None) -> object | None:
    """The content of ``path`` (passed through ``parse``), else of ``<path>.prev``; None when
    neither is there or usable.

    A file that cannot be read, is larger than ``MAX_STATE_BYTES``, or that ``parse`` rejects
    with any exception is moved aside with a warning, so that the next ``write_atomic`` does not
    overwrite it. Never raises.
    """
    for candidate in (path, prev_path(path)):
        value = _read_one(candidate, parse)
        if value is not None:
            if candidate != path:
                log.warning("state %s: using the previous generation %s", path, candidate.name)
            return value
    return None


_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC


def _read_one(path: Path, parse: Callable[[bytes], object] | None) -> object | None:
    try:
        data = _read_regular(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        why = "a symbolic link" if exc.errno == errno.ELOOP else exc.strerror or type(exc).__name__
        _move_aside(path, why)
        return None
    if data is None:
        _move_aside(path, "not a regular file")
        return None
    if len(data) > MAX_STATE_BYTES:
        _move_aside(path, f"larger than {MAX_STATE_BYTES} bytes")
        return None
    if parse is None:
        return data
    try:
        value = parse(data)
    except Exception as exc:  # any parse failure (even RecursionError) only costs this file
        _move_aside(path, f"{type(exc).__name__}: {str(exc)[:200]}")
        return None
    if value is None:
        _move_aside(path, "no usable content")
    return value


def _read_regular(path: Path) -> bytes | None:
    """At most ``MAX_STATE_BYTES + 1`` bytes of ``path``; None when it is not a regular file.
    O_NONBLOCK: opening a FIFO with no writer returns at once instead of waiting for one."""
    fd = os.open(path, _OPEN_FLAGS)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    with os.fdopen(fd, "rb") as handle:
        return handle.read(MAX_STATE_BYTES + 1)


# The largest file a configuration names for a secret (a token is about 1 kB, a password less).
MAX_SECRET_BYTES = 64 * 1024


def read_regular_file(path: Path, limit: int = MAX_SECRET_BYTES) -> bytes:
    """The content of ``path``, which must be a regular file of at most ``limit`` bytes (a
    symbolic link to one is fine: Docker and Kubernetes mount secrets that way). Never waits: a
    FIFO, a device or a directory is refused at once, as is a longer file. Raises ``OSError``
    whose ``strerror`` says why."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than {limit // 1024} KiB", str(path))
    return data


def _move_aside(path: Path, why: str) -> None:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = path.with_name(f"{path.name}.bad-{stamp}")
    try:
        os.replace(path, aside)
    except OSError as exc:
        log.warning("state %s is unusable (%s) and could not be moved aside: %s", path, why, exc.strerror)
        return
    log.warning("state %s is unusable (%s): moved aside to %s", path, why, aside.name)
