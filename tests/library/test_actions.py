"""The one write policy of :mod:`lib_hypernet.library.actions`: typed refusals, no front end's wording,
the target inside the folder when acting on a library, the ``.optim`` side file under the same rule."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import lib_hypernet
from lib_hypernet.errors import HypernetExistsError, HypernetFileError, InvalidNameError, OutsideFolderError
from lib_hypernet.library import actions
from lib_hypernet.library.folder import HypernetLibrary


def test_convert_file_onto_an_existing_file_is_typed_and_names_no_flag(fixtures_dir: Path, tmp_path: Path) -> None:
    dst = tmp_path / "taken.safetensors"
    dst.write_bytes(b"keep me")
    with pytest.raises(HypernetExistsError) as raised:
        lib_hypernet.convert_file(fixtures_dir / "act_relu.pt", dst)
    assert str(raised.value) == f"{dst}: already exists" and dst.read_bytes() == b"keep me"
    os.remove(dst)
    os.symlink(tmp_path / "nowhere", dst)  # a dangling link is a file that exists too
    with pytest.raises(HypernetExistsError):
        lib_hypernet.convert_file(fixtures_dir / "act_relu.pt", dst)


def test_a_directory_is_never_a_target(tmp_path: Path) -> None:
    (tmp_path / "x.pt").mkdir()
    with pytest.raises(HypernetFileError, match="is a directory"):
        actions.check_target(tmp_path / "x.pt", overwrite=True)


def test_inside_resolves_links(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "out"
    root.mkdir()
    outside.mkdir()
    os.symlink(outside / "victim.pt", root / "a.pt")  # the target itself is a link to outside
    with pytest.raises(OutsideFolderError):
        actions.check_target(root / "a.pt", overwrite=True, inside=str(root))
    assert actions.check_target(root / "b.pt", overwrite=False, inside=str(root)) == str(root / "b.pt")


def test_the_optim_side_file_follows_the_policy(fixtures_dir: Path, tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "out"
    root.mkdir()
    outside.mkdir()
    for suffix in ("", ".optim"):
        shutil.copyfile(fixtures_dir / f"optim_fresh_b.pt{suffix}", root / f"train.pt{suffix}")
    (root / "copy.pt.optim").write_bytes(b"keep me")
    done = actions.convert_file(root / "train.pt", root / "copy.pt")
    assert done.optim_kept and "exists, so the optimizer state was not carried over" in done.optim_note
    assert "--force" not in done.optim_note and (root / "copy.pt.optim").read_bytes() == b"keep me"

    os.symlink(outside / "victim.optim", root / "again.pt.optim")
    done = actions.convert_file(root / "train.pt", root / "again.pt", overwrite=True, inside=str(root))
    assert not done.optim_kept and "outside the hypernetwork folder" in done.optim_note
    assert os.listdir(outside) == []


def test_create_in_a_library(tmp_path: Path) -> None:
    library = HypernetLibrary(tmp_path)
    path, hn = actions.create(library, "net: v1", sizes=[8], seed=1)
    assert path == str(tmp_path / "net v1.pt") and lib_hypernet.load(path).widths == hn.widths == [8]
    with pytest.raises(HypernetExistsError):
        actions.create(library, "net v1", sizes=[8])
    with pytest.raises(InvalidNameError, match=r"path separator; give a plain name$"):
        actions.create(library, "../x", sizes=[8])
    with pytest.raises(HypernetFileError, match="no hypernetwork folder"):
        actions.create(HypernetLibrary(None), "x", sizes=[8])


def test_repair_without_overwrite_is_the_exists_refusal(fixtures_dir: Path, tmp_path: Path) -> None:
    shutil.copyfile(fixtures_dir / "act_gelu.pt", tmp_path / "a.pt")
    library = HypernetLibrary(tmp_path)
    library.refresh()
    before = (tmp_path / "a.pt").read_bytes()
    with pytest.raises(HypernetExistsError, match="the file's hash changes"):
        actions.repair(library, library.find("a"))
    assert (tmp_path / "a.pt").read_bytes() == before
    assert actions.repair(library, library.find("a"), overwrite=True).path == str(tmp_path / "a.pt")


def test_verify_reports_what_a1111_refuses_without_a_command(fixtures_dir: Path) -> None:
    found = actions.verify_file(str(fixtures_dir / "act_relu.pt"))
    assert found.failure is None and found.a1111_rejected  # written by newer torch: A1111 1.10.1 refuses it
    assert not any("--force" in note for note in found.notes)


def test_batches_repair_and_convert_a_folder(fixtures_dir: Path, tmp_path: Path) -> None:
    """repair_all / convert_all: one outcome per file, nothing replaced without overwrite, a broken file fails
    alone, the .optim kept in step, progress per file, and a sub-folder that links outside is never written."""
    from hn_testutil import a1111_safe_check

    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    shutil.copyfile(fixtures_dir / "act_relu.pt", root / "relu.pt")
    for suffix in ("", ".optim"):
        shutil.copyfile(fixtures_dir / f"optim_fresh_b.pt{suffix}", root / "sub" / f"train.pt{suffix}")
    lib_hypernet.create("fine", sizes=[8], seed=1).save(root / "fine.pt")
    (root / "broken.pt").write_bytes(b"\x00not a torch file" * 10)
    shutil.copyfile(fixtures_dir / "act_gelu.pt", outside / "linked.pt")
    os.symlink(outside, root / "link")
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}

    def statuses(outcomes: list[actions.FileOutcome]) -> dict[str, str]:
        return {os.path.relpath(o.path, root): o.status for o in outcomes}

    assert statuses(actions.repair_all(root)) == {
        "broken.pt": actions.FAILED, "fine.pt": actions.FINE, os.path.join("link", "linked.pt"): actions.EXISTS,
        "relu.pt": actions.EXISTS, os.path.join("sub", "train.pt"): actions.EXISTS,
    }
    assert {p: p.read_bytes() for p in before} == before

    calls: list[tuple[int, int]] = []
    outcomes = actions.repair_all(str(root), overwrite=True, progress=lambda done, total, name: calls.append((done, total)))
    assert calls == [(i, 5) for i in range(6)]
    assert statuses(outcomes) == {
        "broken.pt": actions.FAILED, "fine.pt": actions.FINE, os.path.join("link", "linked.pt"): actions.FAILED,
        "relu.pt": actions.WRITTEN, os.path.join("sub", "train.pt"): actions.WRITTEN,
    }
    linked = next(o for o in outcomes if "linked" in o.path)
    assert "outside the hypernetwork folder" in linked.message
    assert (outside / "linked.pt").read_bytes() == (fixtures_dir / "act_gelu.pt").read_bytes()
    assert a1111_safe_check(root / "relu.pt") == a1111_safe_check(root / "sub" / "train.pt") == "ok"
    state = lib_hypernet.load_optimizer_state(root / "sub" / "train.pt")
    assert state.ok and state.stored_hash == lib_hypernet.sha256(root / "sub" / "train.pt")[:10]
    assert (root / "fine.pt").read_bytes() == before[root / "fine.pt"]

    outcomes = actions.convert_all(root, to="safetensors")
    assert [o.status for o in outcomes if "broken" in o.path or "linked" in o.path] == [actions.FAILED] * 2
    written = [o for o in outcomes if o.status == actions.WRITTEN]
    assert len(written) == 3 and all(o.target == actions.converted_path(o.path, "safetensors") for o in written)
    assert {o.status for o in actions.convert_all(root) if o.status != actions.FAILED} == {actions.EXISTS}
    assert [o.status for o in actions.repair_files([str(root / "relu.pt"), str(root / "nope.pt")])] == [
        actions.FINE, actions.FAILED]
