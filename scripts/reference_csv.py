"""One writer for the cached PyBaMM reference curves in tests/data (used by the gen_*_reference scripts)."""

from __future__ import annotations

from pathlib import Path


def write_reference_csv(path: Path, comment: str, records, rate_column: bool = False) -> None:
    """Write ``# comment``, a header and the rows of ``records`` to ``path``.

    Args:
        path: the CSV file.
        comment: one line describing how the curves were made (PyBaMM version, set, load).
        records: iterable of ``(c_rate, time, current, voltage)`` (arrays; ``c_rate`` is
            written as a first column only with ``rate_column``).
        rate_column: prefix each row with its C-rate (several discharges in one file).
    """
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(f"# {comment}\n")
        fh.write(("c_rate," if rate_column else "") + "time [s],current [A],voltage [V]\n")
        for c, t, i, v in records:
            for row in zip(t, i, v, strict=True):
                fh.write(("%g," % c if rate_column else "") + "%.4f,%.6g,%.7f\n" % row)
