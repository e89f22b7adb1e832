"""The private X display busbarfem starts for headless ParaView renders.

pvpython connects to the display more than once. A default X server resets when its last
client disconnects and refuses connections meanwhile; under load pvpython's second
connection was refused and it aborted (CI, stop 34). The display must therefore survive a
client's disconnect: an atom interned by one client is still known to the next.
"""

import ctypes
import ctypes.util
import os
import shutil

import pytest

from busbarfem.io import paraview

pytestmark = pytest.mark.skipif(shutil.which("Xvfb") is None or ctypes.util.find_library("X11") is None,
                                reason="Xvfb/libX11 not installed (scripts/install_paraview.sh)")


def _x11():
    lib = ctypes.CDLL(ctypes.util.find_library("X11"))
    lib.XOpenDisplay.restype = ctypes.c_void_p
    lib.XOpenDisplay.argtypes = [ctypes.c_char_p]
    lib.XInternAtom.restype = ctypes.c_ulong
    lib.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    lib.XCloseDisplay.argtypes = [ctypes.c_void_p]
    return lib


def _intern(lib, display: str, only_if_exists: bool) -> int:
    dpy = lib.XOpenDisplay(display.encode())
    assert dpy, f"cannot connect to {display}"
    try:
        return lib.XInternAtom(dpy, b"BUSBARFEM_DISPLAY_PROBE", int(only_if_exists))
    finally:
        lib.XCloseDisplay(dpy)


def test_private_display_does_not_reset_between_clients(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    lib = _x11()
    with paraview.private_display() as display:
        assert display and display.startswith(":")
        atom = _intern(lib, display, only_if_exists=False)
        assert atom != 0
        # after the only client left, a resetting server would have forgotten the atom (0)
        for _ in range(3):
            assert _intern(lib, display, only_if_exists=True) == atom


def test_private_display_is_stopped_after_the_call(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    with paraview.private_display() as display:
        number = display.lstrip(":")
        socket = f"/tmp/.X11-unix/X{number}"
    # Xvfb removes its socket when it exits
    assert not os.path.exists(socket)


def test_failure_summary_keeps_the_error_line_before_a_long_stack():
    stderr = ("( 2.4s) [paraview] vtkXOpenGLRenderWindow.:465 ERR| bad X server connection. DISPLAY=:0. Aborting.\n"
              + "".join(f"{i}  0x55 frame\n" for i in range(400)))
    text = paraview.failure_summary(stderr)
    assert "bad X server connection" in text
    assert "0  0x55 frame" in text and len(text) < 2000
