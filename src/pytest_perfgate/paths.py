"""Checks of the paths perfgate is given, made before any work (docs/gate.md, "Paths").

* :func:`check_input`: an input is a regular file (or, where a directory store is accepted, a
  directory) that can be read. A FIFO, socket or device is refused at once (reading a FIFO would
  block forever); a symlink loop, a folder in the way or a permission problem is an error, never
  "not there": only a path that does not exist (``ENOENT``) may be read as "no baseline yet".
* :func:`check_output`: an output can be written: not a directory (unless one is asked for), not
  a FIFO or device, not a symlink loop, its folder exists or can be made, and can be written. A
  symlink to a file is written *through* (its target is replaced, the link stays). With
  ``perfgate_only`` an existing file that is not a perfgate file is never overwritten.

Every refusal is a :class:`~pytest_perfgate.errors.ResultsFileError` (exit code 2) naming the
path, what is wrong and what is accepted.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import ResultsFileError

#: the head of every JSON file perfgate writes: its ``schema`` key comes first
_PERFGATE_SCHEMA = re.compile(rb'^\s*\{\s*"schema"\s*:\s*"perfgate[-a-z]*"')


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


def _stat_error(path: str, exc: OSError, what: str, *, writing: bool = False) -> ResultsFileError:
    if writing:
        error = _stat_error(path, exc, what)
        return ResultsFileError(path, f"cannot be written: {error.reason}")
    if exc.errno == errno.ELOOP:
        return ResultsFileError(path, f"is a symlink loop (too many levels of symbolic links): expected {what}")
    if exc.errno == errno.ENOTDIR:
        return ResultsFileError(path, f"a part of the path is a file, not a folder: expected {what}")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return ResultsFileError(path, f"cannot be read (permission denied): expected {what} that can be read")
    if exc.errno == errno.ENAMETOOLONG:
        return ResultsFileError(path, f"the path is too long: expected {what}")
    return ResultsFileError(path, f"cannot be read ({exc.strerror or exc}): expected {what}")


def check_input(
    path: str | os.PathLike[str], what: str = "a results file", *, directory_ok: bool = False, missing_ok: bool = False
) -> str | None:
    """``"file"`` or ``"dir"`` for a readable input, ``None`` when it does not exist and
    ``missing_ok`` (only ``ENOENT``: a symlink loop or an unreadable folder is an error, never "not
    there"); otherwise :class:`ResultsFileError` naming the path and what is accepted."""
    name = os.fspath(path)
    if not name:
        raise ResultsFileError("''", f"empty path: expected {what}")
    try:
        info = os.stat(name)
    except FileNotFoundError:
        if missing_ok:
            if os.path.islink(name):
                link = os.readlink(name)
                raise ResultsFileError(name, f"is a dangling symlink (to {link}): expected {what}") from None
            return None
        reason = f"no such file or directory: expected {what}" if directory_ok else "no such file"
        raise ResultsFileError(name, reason) from None
    except OSError as exc:
        raise _stat_error(name, exc, what) from None
    if stat.S_ISREG(info.st_mode):
        if not os.access(name, os.R_OK):
            if missing_ok and not os.path.lexists(name):  # removed meanwhile (a concurrent prune)
                return None
            raise ResultsFileError(name, f"cannot be read (permission denied): expected {what} that can be read")
        return "file"
    if stat.S_ISDIR(info.st_mode):
        if not directory_ok:
            raise ResultsFileError(name, f"is a directory: expected {what}")
        if not os.access(name, os.R_OK | os.X_OK):
            raise ResultsFileError(name, f"cannot be listed (permission denied): expected {what} that can be read")
        return "dir"
    accepted = "a regular file or a directory" if directory_ok else "a regular file"
    raise ResultsFileError(name, f"is {_kind(info.st_mode)}, not {accepted}: expected {what}")


def _can_create_in(folder: Path) -> bool:
    """Whether a file can be made in ``folder`` (tried: ``os.access`` says yes to root everywhere,
    also on a read-only mount or in /proc)."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".perfgate-probe.", dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(probe)
    return True


def is_perfgate_file(path: str | os.PathLike[str]) -> bool:
    """Whether a regular file starts like a JSON file perfgate wrote (``{"schema": "perfgate..."``)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(256)
    except OSError:
        return False
    return bool(_PERFGATE_SCHEMA.match(head))


def check_output(
    path: str | os.PathLike[str],
    what: str = "the results file",
    *,
    directory: bool = False,
    perfgate_only: bool = False,
) -> Path:
    """Where to write ``path`` (a symlink's target for a symlink to a file), checked before any
    work: :class:`ResultsFileError` when it cannot be written there. ``directory``: the path is a
    directory to write files into. ``perfgate_only``: an existing file is overwritten only when it
    is a perfgate JSON file (results, summary, index)."""
    name = os.fspath(path)
    if not name:
        raise ResultsFileError("''", f"empty path: expected a path for {what}")
    expected = "a directory" if directory else "a file path"
    try:
        info = os.stat(name)
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise _stat_error(name, exc, f"{expected} for {what}", writing=True) from None
    target = Path(os.path.realpath(name)) if os.path.islink(name) else Path(name)
    if info is None and directory and os.path.islink(name):
        raise ResultsFileError(
            name, f"cannot be written: is a dangling symlink (to {os.readlink(name)}): expected a directory for {what}"
        )
    if info is not None:
        if directory:
            if not stat.S_ISDIR(info.st_mode):
                found = "a file" if stat.S_ISREG(info.st_mode) else _kind(info.st_mode)
                raise ResultsFileError(name, f"is {found}, not a directory: expected a directory for {what}")
            if not os.access(name, os.W_OK | os.X_OK) or not _can_create_in(Path(name)):
                raise ResultsFileError(
                    name, f"cannot be written (permission denied): expected a writable directory for {what}"
                )
            return target
        if stat.S_ISDIR(info.st_mode):
            example = Path(name) / "out.json"
            raise ResultsFileError(name, f"is a directory: expected a file path for {what} (e.g. {example})")
        if not stat.S_ISREG(info.st_mode):
            raise ResultsFileError(
                name, f"is {_kind(info.st_mode)}, not a regular file: {what} is written as a regular file"
            )
        if perfgate_only and not is_perfgate_file(name):
            raise ResultsFileError(
                name,
                f"exists and is not a perfgate file: not overwritten; pass a new path (or a perfgate file) for {what}",
            )
    # the nearest folder that exists must be a folder we may write in (the rest is made)
    folder = target.parent
    while True:
        try:
            folder_info = os.stat(folder)
        except FileNotFoundError:
            if folder == folder.parent:
                break
            folder = folder.parent
            continue
        except OSError as exc:
            raise _stat_error(name, exc, f"{expected} for {what}", writing=True) from None
        if not stat.S_ISDIR(folder_info.st_mode):
            raise ResultsFileError(
                name, f"cannot be written: its folder {folder} is not a directory: expected {expected} for {what}"
            )
        if not os.access(folder, os.W_OK | os.X_OK) or not _can_create_in(folder):
            raise ResultsFileError(name, f"cannot be written: no permission to write in {folder}")
        break
    return target


@contextmanager
def writing(path: str | os.PathLike[str], what: str = "the file") -> Iterator[None]:
    """Turn an ``OSError`` while writing ``path`` (a full disk, a read-only mount) into a
    :class:`ResultsFileError` naming it: what :func:`check_output` could not foresee."""
    try:
        yield
    except OSError as exc:
        raise ResultsFileError(os.fspath(path), f"cannot be written ({exc.strerror or exc}): {what}") from None


def same_place(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two paths name the same file or directory (after symlinks; a missing path is only
    the same as one with the same resolved name)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def read_text(path: str | os.PathLike[str], what: str = "a results file") -> str:
    """The UTF-8 text of an input file, checked first (:func:`check_input`); a
    :class:`ResultsFileError` naming it when it cannot be read or is empty."""
    name = os.fspath(path)
    check_input(name, what)  # a FIFO would block the read forever: refused at once
    try:
        text = Path(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsFileError(name, "no such file") from None
    except IsADirectoryError:
        raise ResultsFileError(name, f"is a directory, expected {what}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsFileError(name, f"cannot be read: {exc}") from None
    if not text.strip():
        raise ResultsFileError(name, "is empty")
    return text


__all__ = [
    "check_input",
    "check_output",
    "is_perfgate_file",
    "read_text",
    "same_place",
    "write_json_atomic",
    "write_text_atomic",
    "writing",
]


# --------------------------------------------------------------------------- writing


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, then rename):
    a reader never sees a half-written file, and a crash leaves the old one in place."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a results file is an ordinary file
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return target


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`write_bytes_atomic`)."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> Path:
    """Write JSON to ``path`` atomically (see :func:`write_text_atomic`)."""
    return write_text_atomic(path, json.dumps(data, indent=1, allow_nan=False) + "\n")


@functools.lru_cache(maxsize=16)
def _work_tree(directory: str) -> Path | None:
    """The git work tree holding ``directory`` (a folder with ``.git``), None outside any."""
    root = Path(directory)
    return next((parent for parent in (root, *root.parents) if (parent / ".git").exists()), None)


def repository_prefix(directory: str) -> str:
    """``directory``'s path inside the git work tree holding it ("" at its top, or outside any),
    "/"-separated: what the GitLab Code Quality report needs in front of paths relative to it."""
    tree = _work_tree(directory)
    return "" if tree is None else Path(directory).relative_to(tree).as_posix().removeprefix(".")


def repository_path(path: str | os.PathLike[str]) -> str:
    """``path`` (absolute, or relative to the working directory) relative to the git work tree
    holding it, "/"-separated; relative to the working directory when it is in none."""
    full = Path(os.path.abspath(path))
    tree = _work_tree(str(full.parent))
    return (full.relative_to(tree) if tree is not None else Path(os.path.relpath(full))).as_posix()
