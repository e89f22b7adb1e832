"""Reading user-named files defensively: regular files only, bounded size, clear errors.

A case file, a data table, a STEP file or an output artefact can be anything a path can
name: a FIFO (``open`` blocks forever), ``/dev/zero`` (``read`` never ends), a folder, a
symlink loop, a kernel pseudo-file under ``/proc``. Every reader of a user-named file goes
through :func:`check_regular_file` / :func:`read_bytes`, which turn each of these into a
:class:`~busbarfem.errors.CaseError` (exit 2) before anything is opened.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from busbarfem.errors import CaseError

#: Largest case file (YAML) read [bytes]; the bundled examples are below 10 kB.
MAX_CASE_BYTES = 4 * 1024 * 1024
#: Largest data table (drive-cycle / load curve file) read [bytes].
MAX_TABLE_BYTES = 64 * 1024 * 1024
#: Largest JSON/YAML artefact of an output folder read by ``busbarfem report`` [bytes].
MAX_ARTEFACT_BYTES = 64 * 1024 * 1024

_PSEUDO_ROOTS = ("/proc", "/sys", "/dev")


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_regular_file(path: str | Path, what: str, *, max_bytes: int | None = None,
                       key: str | None = None, file: str | None = None, line: int | None = None) -> Path:
    """Raise a CaseError unless ``path`` is an existing, readable regular file of bounded size.

    Args:
        path: the file.
        what: what the file is, for the message ("case file", "current curve file").
        max_bytes: refuse larger files (None: no bound).
        key, file, line: where the path was written (the error is located there); by
            default the error names ``path`` itself; ``file=""`` leaves the file unset
            (a caller below the loader: the CLI adds the case file and line of ``key``).

    Returns:
        ``path`` as a :class:`Path`.
    """
    p = Path(path)
    loc = {"file": (file or None) if file is not None else str(p), "line": line, "key": key}

    def fail(msg: str) -> CaseError:
        return CaseError(f"cannot read {what} '{p}': {msg}", **loc)

    if str(path) == "":
        raise CaseError(f"{what}: the path is empty", **loc)
    if "\x00" in str(path):
        raise CaseError(f"{what}: the path contains a NUL character", **loc)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise fail("it does not exist") from None
    except OSError as exc:
        raise fail(f"{exc.strerror or exc}") from None
    except ValueError as exc:  # e.g. an embedded NUL from an API caller
        raise fail(f"not a usable path ({exc})") from None
    if not stat.S_ISREG(st.st_mode):
        raise fail(f"it is {_kind(st.st_mode)}; a regular file is needed")
    try:
        real = os.path.realpath(p)
    except (OSError, ValueError):
        real = str(p)
    if any(real == r or real.startswith(r + "/") for r in _PSEUDO_ROOTS):
        raise fail("it is a kernel pseudo-file (/proc, /sys, /dev); a regular file is needed")
    if max_bytes is not None and st.st_size > max_bytes:
        raise fail(f"it is {st.st_size / 1048576:.1f} MiB, above the {max_bytes / 1048576:g} MiB limit for a {what}")
    if not os.access(p, os.R_OK):
        raise fail("permission denied")
    return p


def read_bytes(path: str | Path, what: str, *, max_bytes: int, **loc) -> bytes:
    """The content of a regular file of at most ``max_bytes`` (see :func:`check_regular_file`)."""
    p = check_regular_file(path, what, max_bytes=max_bytes, **loc)
    try:
        with open(p, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise CaseError(f"{what} '{p}' cannot be read: {exc.strerror or exc}",
                        file=loc.get("file") or str(p), line=loc.get("line"), key=loc.get("key")) from None
    if len(data) > max_bytes:  # grew since the stat
        raise CaseError(f"{what} '{p}' is above the {max_bytes / 1048576:g} MiB limit",
                        file=loc.get("file") or str(p), line=loc.get("line"), key=loc.get("key"))
    return data


def read_text(path: str | Path, what: str, *, max_bytes: int, **loc) -> str:
    """:func:`read_bytes` decoded as UTF-8 (a decoding error is a CaseError)."""
    data = read_bytes(path, what, max_bytes=max_bytes, **loc)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        own = not loc.get("file")  # the error is located in the file itself: give the byte's line
        raise CaseError(f"{what} '{path}' is not UTF-8 text (byte {exc.start}: {exc.reason})",
                        file=loc.get("file") or str(path),
                        line=data[: exc.start].count(b"\n") + 1 if own else loc.get("line"),
                        key=loc.get("key")) from None
