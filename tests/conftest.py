"""Shared fixtures; put tests/ (helpers.py, msmd_fixture.py) on the import path."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import dolfinx_solver  # noqa: F401
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import EXAMPLES  # noqa: E402


@pytest.fixture
def examples_dir() -> Path:
    """The bundled example cases."""
    return EXAMPLES


@pytest.fixture(scope="session", autouse=True)
def mesh_cache_dir(tmp_path_factory) -> Path:
    """One mesh cache folder per test session, never ~/.cache or the checkout.

    Set as ``BUSBARFEM_MESH_CACHE`` so CLI runs in subprocesses (and mpirun) inherit it.
    """
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # pytest-xdist: the workers' base folders share one parent, so they share one cache
        # (cache entries are written to a temporary name and renamed, so this is safe).
        path = tmp_path_factory.getbasetemp().parent / "mesh-cache"
        path.mkdir(exist_ok=True)
    else:
        path = tmp_path_factory.mktemp("mesh-cache")
    previous = os.environ.get("BUSBARFEM_MESH_CACHE")
    os.environ["BUSBARFEM_MESH_CACHE"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("BUSBARFEM_MESH_CACHE", None)
    else:
        os.environ["BUSBARFEM_MESH_CACHE"] = previous


def _plain(value):
    """``value`` with numpy scalars/arrays turned into Python numbers and lists."""
    import json

    return json.loads(json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep ``record_property`` values serialisable: pytest-xdist workers cannot send numpy
    scalars to the controller (a worker dies with execnet's DumpError)."""
    outcome = yield
    report = outcome.get_result()
    report.user_properties = [(k, _plain(v)) for k, v in report.user_properties]


def _sigint_log(config) -> Path:
    """The file naming tests that left SIGINT blocked (shared by the xdist workers)."""
    base = config._tmp_path_factory.getbasetemp()
    return (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "sigint-blocked.log"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """Name the test that leaves SIGINT blocked in this process, and unblock it.

    A blocked signal mask is inherited by every child process (through fork and exec), so
    a run started by a later test would never see its Ctrl-C (session 7: the Ctrl-C test
    failed in full runs only). The test is named in the run's summary; the unblock keeps
    later tests independent of it."""
    import signal

    yield
    if signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, []):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        with open(_sigint_log(item.config), "a") as f:
            f.write(f"{item.nodeid}\n")


def pytest_terminal_summary(terminalreporter, config):
    """List the tests that left SIGINT blocked (see :func:`pytest_runtest_teardown`)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    log = _sigint_log(config)
    if log.exists():
        terminalreporter.section("SIGINT left blocked (unblocked after each)")
        for line in log.read_text().splitlines():
            terminalreporter.write_line(line)
