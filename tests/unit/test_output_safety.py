"""Filesystem safety (issue 13): no user file outside a busbarfem-created output folder is
ever removed or written, whatever ``-o``, ``name:`` and ``--overwrite`` say."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import EXAMPLES

from busbarfem.cli import main
from busbarfem.io.outdir import MARKER, check_outdir, prepare

BASE = (EXAMPLES / "busbar_straight.yaml").read_text()


def snapshot(root: Path) -> dict[str, bytes | str]:
    """Every file (content) and symlink (target) under ``root``."""
    out: dict[str, bytes | str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            if p.is_symlink():
                out[str(p)] = "-> " + os.readlink(p)
            elif p.is_file():
                out[str(p)] = p.read_bytes()
            else:
                out[str(p)] = "<dir>"
    return out


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A fake HOME holding a project folder (the cwd, with the case file and user data),
    a user folder outside it and a symlink to that folder."""
    home = tmp_path / "home"
    proj = home / "proj"
    other = tmp_path / "userdata"
    for d, files in ((home, {"notes.txt": "home file", ".bashrc": "export X=1"}),
                     (proj, {"data.csv": "1,2\n", "readme.md": "my project"}),
                     (proj / "sub", {"keep.h5": "not ours"}),
                     (other, {"thesis.tex": "chapter 1", "fields.xdmf": "a user's own xdmf"})):
        d.mkdir(parents=True, exist_ok=True)
        for n, text in files.items():
            (d / n).write_text(text)
    (proj / "case.yaml").write_text(BASE)
    (proj / "link").symlink_to(other, target_is_directory=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(proj)
    return tmp_path, home, proj, other


@pytest.mark.parametrize("target", [".", "..", "{home}", "{proj}", "{proj}/sub", "link", "{other}", "/",
                                    "{home}/..", "sub/..", "case.yaml"])
@pytest.mark.parametrize("overwrite", [False, True])
def test_hostile_output_folders_are_refused(tree, capsys, target, overwrite):
    tmp, home, proj, other = tree
    o = target.format(home=home, proj=proj, other=other)
    if o == "/" and overwrite:
        # never hand the real root to a command that may delete: check the decision only
        err, remove = check_outdir(Path("/"), True, proj / "case.yaml")
        assert err and "root" in err and remove == []
        return
    before = snapshot(tmp)
    code = main(["run", "case.yaml", "-o", o, "-q", "--no-cache", *(["--overwrite"] if overwrite else [])])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and "output folder" in err
    assert snapshot(tmp) == before, "a user file was removed, changed or written"


@pytest.mark.parametrize("name", ["{other}", "../x", "../../x", "a/b", "..", ".", "", "~", "c:x", "a\\b"])
def test_case_name_cannot_choose_an_outside_folder(tree, capsys, name):
    tmp, home, proj, other = tree
    text = BASE.replace("name: busbar_straight", f"name: '{name.format(other=other)}'")
    assert text != BASE
    (proj / "case.yaml").write_text(text)
    before = snapshot(tmp)
    code = main(["run", "case.yaml", "-q", "--no-cache", "--overwrite"])
    err = capsys.readouterr().err
    assert code == 2, err
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if ln.startswith("name:"))
    assert f"case.yaml:{line}: name:" in err and "plain folder name" in err
    assert snapshot(tmp) == before


def test_unmarked_non_empty_folder_is_refused_even_with_overwrite(tree, capsys):
    tmp, home, proj, other = tree
    out = proj / "results" / "old"
    out.mkdir(parents=True)
    (out / "summary.json").write_text("{}")  # looks like an output, but busbarfem did not make the folder
    before = snapshot(tmp)
    code = main(["run", "case.yaml", "-o", str(out), "-q", "--no-cache", "--overwrite"])
    err = capsys.readouterr().err
    assert code == 2 and MARKER in err and "not created by busbarfem" in err
    assert snapshot(tmp) == before


def test_overwrite_of_a_marked_folder_keeps_foreign_files(tree, capsys):
    """A real ``busbarfem mesh`` run creates and marks its folder; a second run without
    --overwrite is refused, with --overwrite it replaces its own outputs only."""
    tmp, home, proj, other = tree
    out = proj / "results" / "m"
    args = ["mesh", "case.yaml", "-o", str(out), "-q", "--set", "mesh.size=0.004"]
    assert main(args) == 0
    assert (out / MARKER).is_file() and (out / "mesh.xdmf").is_file()
    (out / "my_notes.txt").write_text("mine")
    (out / "stale.png").write_bytes(b"old render")
    (out / "link_out").symlink_to(other, target_is_directory=True)
    before = snapshot(tmp)
    capsys.readouterr()
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert snapshot(tmp) == before
    assert main([*args, "--overwrite"]) == 0
    assert "my_notes.txt" in capsys.readouterr().err  # told what was kept
    assert (out / "my_notes.txt").read_text() == "mine"
    assert not (out / "stale.png").exists()  # an output pattern: removed
    after = snapshot(tmp)
    for p, v in before.items():
        if not p.startswith(str(out) + os.sep):
            assert after.get(p) == v, p  # nothing outside the output folder changed
    assert (out / "link_out").is_symlink() and (other / "thesis.tex").read_text() == "chapter 1"


def test_prepare_creates_marks_and_adopts_empty_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert prepare(Path("a/b/c"), False) == []
    assert (tmp_path / "a/b/c" / MARKER).is_file() and not (tmp_path / "a" / MARKER).exists()
    (tmp_path / "empty").mkdir()
    assert prepare(Path("empty"), False) == [] and (tmp_path / "empty" / MARKER).is_file()
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    err, _ = check_outdir(Path("dangling"), False)
    assert err and "does not exist" in err and not (tmp_path / "nowhere").exists()
    err, _ = check_outdir("", True)
    assert err and "empty" in err


def test_empty_output_option_is_refused(tree, capsys):
    tmp, home, proj, other = tree
    before = snapshot(tmp)
    assert main(["run", "case.yaml", "-o", "", "-q", "--no-cache", "--overwrite"]) == 2
    assert "empty" in capsys.readouterr().err
    assert snapshot(tmp) == before
