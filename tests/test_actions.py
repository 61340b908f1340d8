"""The one write policy of :mod:`lib_hypernet.library.actions`: typed refusals, no front end's wording,
the target inside the folder when acting on a library, the ``.optim`` side file under the same rule."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

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


# --------------------------------------------------------------------- batch actions (issue 16)
def _a1111_folder(fixtures_dir: Path, root: Path) -> Path:
    """A1111-made files A1111 1.10.1 refuses (zip entries), one with its .optim, one A1111 loads, one truncated,
    one .safetensors."""
    from lib_hypernet.formats.safe_unpickle import a1111_zip_entries_rejected

    root.mkdir()
    for name in ("act_relu.pt", "act_gelu.pt", "optim_fresh_a.pt", "optim_fresh_a.pt.optim"):
        shutil.copyfile(fixtures_dir / name, root / name)
    lib_hypernet.load(fixtures_dir / "act_tanh.pt").save(root / "legacy_ok.pt")
    lib_hypernet.load(fixtures_dir / "act_elu.pt").save(root / "elu.safetensors")
    data = (fixtures_dir / "act_linear.pt").read_bytes()
    (root / "truncated.pt").write_bytes(data[: len(data) // 2])
    assert a1111_zip_entries_rejected(root / "legacy_ok.pt") == []
    assert all(a1111_zip_entries_rejected(root / n) for n in ("act_relu.pt", "act_gelu.pt", "optim_fresh_a.pt"))
    return root


def test_repair_all_needs_overwrite_then_repairs_every_refused_pt(fixtures_dir: Path, tmp_path: Path) -> None:
    from lib_hypernet.formats.optim import load_optimizer_state
    from lib_hypernet.formats.safe_unpickle import a1111_zip_entries_rejected

    root = _a1111_folder(fixtures_dir, tmp_path / "hn")
    before = {p.name: p.read_bytes() for p in root.iterdir()}
    library = HypernetLibrary(root)
    results = actions.repair_all(library)
    assert {p.name: p.read_bytes() for p in root.iterdir()} == before  # nothing written without overwrite
    by_name = {r.name: r for r in results}
    assert sorted(by_name) == ["act_gelu", "act_relu", "legacy_ok", "optim_fresh_a", "truncated"]  # the .pt files
    assert by_name["act_relu"].action == "skipped" and "overwriting was not asked for" in by_name["act_relu"].detail
    assert by_name["legacy_ok"] == actions.BatchResult("legacy_ok", "skipped", actions.ALREADY_FINE)
    assert by_name["truncated"].action == "failed" and str(root) not in by_name["truncated"].detail

    calls: list[tuple[int, int, str]] = []
    results = actions.repair_all(library, overwrite=True, progress=lambda *a: calls.append(a))
    assert [r.action for r in results] == ["repaired", "repaired", "skipped", "repaired", "failed"]
    assert calls[0] == (0, 5, "act_gelu") and calls[-1] == (5, 5, "")
    for name in ("act_relu.pt", "act_gelu.pt", "optim_fresh_a.pt"):
        assert a1111_zip_entries_rejected(root / name) == [], name
    assert (root / "legacy_ok.pt").read_bytes() == before["legacy_ok.pt"]
    assert (root / "truncated.pt").read_bytes() == before["truncated.pt"]
    # the .optim side file was re-written for the repaired file's new hash
    assert load_optimizer_state(str(root / "optim_fresh_a.pt")).status == "ok"
    assert "optim" in {r.name: r for r in results}["optim_fresh_a"].detail
    assert actions.batch_summary(results, "repaired") == "repaired 3 of 5; 1 was fine; 1 failed"
    assert library.find("act_relu").size == (root / "act_relu.pt").stat().st_size  # the library was rescanned


def test_convert_all_writes_beside_and_never_overwrites_without_asking(fixtures_dir: Path, tmp_path: Path) -> None:
    root = _a1111_folder(fixtures_dir, tmp_path / "hn")
    (root / "act_gelu.safetensors").write_bytes(b"keep me")
    library = HypernetLibrary(root)
    results = {r.name: r for r in actions.convert_all(library)}
    assert (root / "act_gelu.safetensors").read_bytes() == b"keep me"
    assert results["act_gelu.pt"].action == "skipped" and "exists" in results["act_gelu.pt"].detail
    assert results["act_relu"].action == "converted" and (root / "act_relu.safetensors").is_file()
    assert results["truncated"].action == "failed"
    assert "elu" not in results  # already a .safetensors
    a, b = lib_hypernet.load(root / "act_relu.pt"), lib_hypernet.load(root / "act_relu.safetensors")
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    assert (root / "optim_fresh_a.pt.optim").is_file()  # the optimizer state stays with the .pt
    again = actions.convert_all(library, overwrite=True)
    assert {r.name: r.action for r in again}["act_gelu.pt"] == "converted"
    assert lib_hypernet.load(root / "act_gelu.safetensors").widths == lib_hypernet.load(root / "act_gelu.pt").widths
    summary = actions.batch_summary(list(results.values()), "converted")
    assert summary == "converted 3 of 5; 1 skipped; 1 failed", summary
    with pytest.raises(lib_hypernet.errors.HypernetError, match="formats are"):
        actions.convert_all(library, to="ckpt")

