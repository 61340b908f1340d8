"""The library panel's callbacks (called directly, as the events call them) and building it with gradio 3.41.2."""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest
import torch
from hn_testutil import REPO_ROOT, CopyFixtures, TouchViaSystem

import lib_hypernet
from lib_hypernet.formats.safe_unpickle import a1111_zip_entries_rejected
from lib_hypernet.library.description import ModelFacts
from lib_hypernet.library.examples import EXAMPLES, make_examples
from lib_hypernet.library.folder import HypernetLibrary
from lib_hypernet.library.source import LibrarySource, SendTarget
from lib_hypernet.model.family import SdVersion
from lib_hypernet.ui import compat
from lib_hypernet.ui.__main__ import main
from lib_hypernet.ui.library_panel import COLUMNS, NAME_COLUMN, LibraryPanel, build_library_panel, matches, row_of
from lib_hypernet.ui.standalone import build_app, make_source


def _rows(view) -> list[list]:
    return view.table["data"]


def _names(view) -> list[str]:
    return [row[NAME_COLUMN] for row in _rows(view)]


ACTION_OUT = ("table", "names", "files", "status", "detail", "tag", "convert", "repair", "highlight", "result_for",
              "message")
"""What a file action (convert, repair, hash) returns in the standalone panel (no send buttons)."""


def _action(out: tuple) -> dict:
    assert len(out) == len(ACTION_OUT)
    return dict(zip(ACTION_OUT, out))


def _choices(update: dict) -> list[str]:
    """Dropdown choice values (gradio 4 gets (label, value) pairs, gradio 3 values)."""
    return [c[1] if isinstance(c, (list, tuple)) else c for c in update["choices"]]


class Progress:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def __call__(self, value, desc=None, unit=None) -> None:
        self.calls.append((value, desc))


# --------------------------------------------------------------------- table
def test_view_lists_every_file_with_all_columns(panel: LibraryPanel, folder: Path) -> None:
    view = panel.view()
    assert view.table["headers"] == list(COLUMNS)
    assert _names(view) == ["act_gelu", "act_relu", "dims_24_32_48_meta", "legacy_novelai", "optim_fresh_a"]
    assert view.names == _names(view)
    row = dict(zip(COLUMNS, _rows(view)[2]))
    assert row.pop("status").endswith(">A1111 cannot load — repair</span>")
    assert row == {
        "name": "dims_24_32_48_meta", "relative path": "dims_24_32_48_meta.pt", "format": "pt", "SD version": "–",
        "structure": "1, 2, 1", "activation": "relu", "layer norm": "yes", "dropout": "none", "step": 1500,
        "base model": "random-sd15 [a1b2c3d4e5]", "short hash": "", "size": "145.5 KiB", "safe": "yes",
        "A1111 loads": "no",
    }
    assert dict(zip(COLUMNS, _rows(view)[0]))["relative path"] == "styles/act_gelu.pt"
    assert _choices(view.files) == view.names and view.files["value"] == "act_gelu"
    assert view.status.startswith(f"5 files in `{folder}`") and "without a hash yet" in view.status


def test_search_and_sort(panel: LibraryPanel) -> None:
    assert _names(panel.view("gelu")) == ["act_gelu"]
    assert _names(panel.view("styles/")) == ["act_gelu"]
    assert _names(panel.view("RANDOM-sd15 1500")) == ["dims_24_32_48_meta"]  # every word, any case
    assert _names(panel.view("relu nothing")) == []
    empty = panel.view("nothing at all")
    assert empty.files["value"] is None and empty.status.startswith("0 of 5 files")
    assert _names(panel.view("", "step", True))[0] == "dims_24_32_48_meta"
    by_size = panel.view("", "size", False)
    sizes = [os.path.getsize(panel.source.library.files[n].path) for n in by_size.names]
    assert sizes == sorted(sizes)
    assert panel.view("", "name", True).names == list(reversed(panel.view().names))
    assert panel.view("", "no such key").names == panel.view().names
    assert panel.view("", "name", False, "legacy_novelai").files["value"] == "legacy_novelai"  # kept when shown


def test_search_finds_hashes_once_known(panel: LibraryPanel) -> None:
    desc = panel.source.describe("act_relu")
    assert desc is not None and desc.sha256
    assert _names(panel.view(desc.sha256[:12])) == ["act_relu"]


def test_select_row(panel: LibraryPanel) -> None:
    view = panel.view()
    names, rows = view.names, _rows(view)
    assert panel.on_select(names, rows, SimpleNamespace(index=[3, 4], value="1, 2, 1")) == "legacy_novelai"
    # the browser sorted the table by a header click: the index is into its order
    shown = sorted(rows, key=lambda row: str(row[COLUMNS.index("activation")]))
    assert [r[NAME_COLUMN] for r in shown][:2] == ["legacy_novelai", "act_gelu"]
    assert panel.on_select(names, shown, SimpleNamespace(index=[0, 5], value="None")) == "legacy_novelai"
    assert panel.on_select(names, {"headers": list(COLUMNS), "data": shown}, SimpleNamespace(index=[1, 2], value="pt")) \
        == "act_gelu"
    assert panel.on_select(names, None, SimpleNamespace(index=[1, 4], value="x")) == "act_relu"
    assert panel.on_select(names, rows, SimpleNamespace(index=[99, 4], value="x")) == gr.update()


def test_refresh_picks_up_new_files(panel: LibraryPanel, folder: Path, copy_fixtures: CopyFixtures) -> None:
    panel.view()
    copy_fixtures(folder, "act_tanh.pt")
    _table, names, files, status = panel.on_refresh("", "name", False, None)
    assert "act_tanh" in names and "act_tanh" in _choices(files) and status.startswith("6 files")
    assert panel.on_filter("", "name", False, "act_tanh")[2]["value"] == "act_tanh"


# --------------------------------------------------------------------- detail and tag
def test_detail_shows_metadata_hash_optim_and_warnings(folder: Path) -> None:
    facts = ModelFacts.for_family(SdVersion.SD1, "0123456789", "sd15")
    panel = LibraryPanel(LibrarySource(HypernetLibrary(folder), model_facts=lambda: facts))
    html, tag = panel.on_file("dims_24_32_48_meta", 0.8)
    assert tag == "<hypernet:dims_24_32_48_meta:0.8>"
    for text in ("random-sd15 [a1b2c3d4e5]", "e35e8dc32d", "fixture: dims 24/32/48 with training metadata", "1500",
                 "XavierNormal", "24: Linear(24, 48) → ReLU", "missing: no optimizer state file",
                 "A1111 cannot load this .pt: repair it", "trained on another checkpoint",
                 "no width matches the loaded model"):
        assert text in html, text
    assert "ok: hash matches" in panel.on_file("optim_fresh_a", 1)[0]
    assert "Select a file" in panel.on_file(None, 0.8)[0] and panel.on_file(None, 0.8)[1] == ""
    assert "Select a file" in panel.on_file("vanished", 0.8)[0]


def test_detail_escapes_html(folder: Path) -> None:
    hn = lib_hypernet.create("x", sizes=[8], layer_structure=[1, 1], seed=1,
                             optional_info="<script>alert(1)</script>")
    hn.save(folder / "html.safetensors")
    html, _ = LibraryPanel(LibrarySource(HypernetLibrary(folder))).on_file("html", 1.0)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_tag_follows_the_slider(panel: LibraryPanel) -> None:
    assert panel.tag("act_relu", 0.8) == "<hypernet:act_relu:0.8>"
    assert panel.tag("act_relu", 0.8500000000000001) == "<hypernet:act_relu:0.85>"
    assert panel.tag("act_relu", -1.25) == "<hypernet:act_relu:-1.25>"
    assert panel.tag("act_relu", 0) == "<hypernet:act_relu:0>"
    assert panel.tag("act_relu", None) == "<hypernet:act_relu:0.8>"
    assert panel.tag(None, 1) == ""
    assert panel.tag("sub/my style (v2)", 1) == "<hypernet:sub/my style (v2):1>"


def test_unsafe_and_broken_files_are_listed_not_fatal(folder: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    torch.save({768: TouchViaSystem(marker)}, folder / "evil.pt")
    (folder / "broken.pt").write_bytes(b"\x00not a torch file" * 10)
    panel = LibraryPanel(LibrarySource(HypernetLibrary(folder)))
    view = panel.view()
    rows = {row[NAME_COLUMN]: dict(zip(COLUMNS, row)) for row in _rows(view)}
    assert rows["evil"]["safe"] == "NO (refused)" and rows["broken"]["safe"] == "unknown"
    assert "2 broken" in view.status
    assert _names(panel.view("unsafe")) == ["evil"]
    html, _ = panel.on_file("evil", 1)
    assert "hypernet-lib-error" in html and "system" in html
    message = panel.on_convert("evil", False, "", "name", False)[-1]
    assert message.startswith("⚠") and not (folder / "evil.safetensors").exists()
    assert not marker.exists()
    descs = {d.name: d for d in panel.source.descriptions()}
    assert descs["broken"].label() == "broken ⚠ broken" and descs["evil"].label().endswith(" ⚠ broken")
    assert "⚠" not in descs["act_relu"].label()


# --------------------------------------------------------------------- actions
def test_hash_missing_with_progress(panel: LibraryPanel) -> None:
    progress = Progress()
    *view, message = panel.on_hash("", "name", False, None, progress=progress)
    assert message == "Hashed 5 files."
    assert progress.calls[0] == ((0, 5), "hashing act_gelu") and progress.calls[-1] == ((5, 5), "hashed")
    assert all(row[COLUMNS.index("short hash")] for row in view[0]["data"])
    assert "without a hash" not in view[3]
    assert panel.on_hash("", "name", False, None, progress=Progress())[-1] == "Every file already has its hash."


def test_convert_never_overwrites_without_asking(panel: LibraryPanel, folder: Path) -> None:
    out = _action(panel.on_convert("legacy_novelai", False, "", "name", False))
    names, files, message = out["names"], out["files"], out["message"]
    target = folder / "legacy_novelai.safetensors"
    assert message.startswith("Wrote legacy_novelai.safetensors") and target.is_file()
    assert files["value"] == "legacy_novelai" and "legacy_novelai.pt" in names
    a, b = lib_hypernet.load(folder / "legacy_novelai.pt"), lib_hypernet.load(target)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))

    before = target.stat().st_mtime_ns
    message = panel.on_convert("legacy_novelai.pt", False, "", "name", False)[-1]
    assert "tick 'Overwrite'" in message and target.stat().st_mtime_ns == before
    assert panel.on_convert("legacy_novelai.pt", True, "", "name", False)[-1].startswith("Wrote")
    assert "already a .safetensors" in panel.on_convert("legacy_novelai", False, "", "name", False)[-1]
    assert "select a file" in panel.on_convert(None, False, "", "name", False)[-1]
    assert "press Refresh" in panel.on_convert("gone", False, "", "name", False)[-1]


def test_convert_in_a_subfolder_selects_the_safetensors_and_reports_no_clash(
    panel: LibraryPanel, caplog: pytest.LogCaptureFixture
) -> None:
    """``styles/act_gelu.pt`` → ``.safetensors`` is the README's normal case: no "files are named" warning (its
    ``<hypernet:styles/act_gelu>`` could not reach the .pt), and the detail shows the file the plain name is now."""
    panel.view()
    with caplog.at_level("INFO", logger="lib_hypernet.library.folder"):
        out = panel.on_convert("act_gelu", False, "", "name", False)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    out = _action(out)
    files, status, detail, result_for, message = (out[k] for k in ("files", "status", "detail", "result_for", "message"))
    assert message.startswith("Wrote act_gelu.safetensors"), message
    assert "sharing a stem" not in status
    notes = [r.getMessage() for r in caplog.records]
    assert any("<hypernet:act_gelu> is styles/act_gelu.safetensors" in m and "<hypernet:styles/act_gelu.pt>" in m
               for m in notes), notes
    library = panel.source.library
    assert library.find("act_gelu").format == "safetensors" and library.find("styles/act_gelu.pt").format == "pt"
    # the selection is the plain name, which is the .safetensors now: so is the detail
    assert files["value"] == result_for == "act_gelu"
    assert "styles/act_gelu.safetensors" in detail and "act_gelu.pt" not in detail
    # the message stays while that file is selected, another file clears it
    assert panel.on_selected("act_gelu", 0.8, result_for)[-1] == gr.update()
    selected_other = panel.on_selected("act_relu", 0.8, result_for)
    assert selected_other[-1] == "" and "act_relu.pt" in selected_other[0]


def test_a_real_clash_beside_a_conversion_suggests_names_that_resolve(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (folder / "other").mkdir()
    shutil.copyfile(folder / "act_relu.pt", folder / "other" / "act_gelu.pt")
    lib_hypernet.convert_file(folder / "styles" / "act_gelu.pt", folder / "styles" / "act_gelu.safetensors")
    library = HypernetLibrary(folder)
    with caplog.at_level("WARNING", logger="lib_hypernet.library.folder"):
        library.refresh()
    (warning,) = [r.getMessage() for r in caplog.records]
    tags = re.findall(r"<hypernet:([^>]+)>", warning)
    assert sorted(tags) == ["other/act_gelu", "styles/act_gelu", "styles/act_gelu.pt"]
    assert len({library.find(tag).path for tag in tags}) == 3  # each suggested tag is its own file
    assert library.duplicates == {"act_gelu": ["other/act_gelu.pt", "styles/act_gelu.pt", "styles/act_gelu.safetensors"]}


def test_repair_asks_then_rewrites_in_the_legacy_format(panel: LibraryPanel, folder: Path) -> None:
    path = folder / "act_relu.pt"
    original = path.read_bytes()
    message = panel.on_repair("act_relu", False, "", "name", False)[-1]
    assert "tick 'Overwrite' to confirm" in message and path.read_bytes() == original
    message = panel.on_repair("act_relu", True, "", "name", False)[-1]
    assert message.startswith("Repaired act_relu"), message
    assert a1111_zip_entries_rejected(path) == []
    desc = panel.source.describe("act_relu")
    assert desc is not None and desc.a1111_loadable is True and desc.warnings == []


def test_create(panel: LibraryPanel, folder: Path) -> None:
    def create(name, **changes):
        args = dict(name=name, sizes=["768"], other_sizes="32, 64", layer_structure="1, 2, 1", activation="relu",
                    init="Normal", layer_norm=True, dropout=False, dropout_structure="0, 0, 0", activate_output=False,
                    file_format="safetensors", seed=7, info="made in a test", overwrite=False, query="", sort="name",
                    descending=False, selected=None)
        args.update(changes)
        return panel.on_create(*args.values())

    *view, message = create("new one")
    assert message == "Created new one.", message
    path = folder / "new one.safetensors"
    hn = lib_hypernet.load(path)
    assert hn.widths == [32, 64, 768] and hn.is_layer_norm and hn.activation_func == "relu"
    assert hn.optional_info == "made in a test" and view[2]["value"] == "new one"
    same_seed = lib_hypernet.create("new one", sizes=[32, 64, 768], layer_structure=[1, 2, 1], activation_func="relu",
                                    is_layer_norm=True, seed=7)
    assert all(torch.equal(a, b) for a, b in zip(hn.parameters(), same_seed.parameters()))

    before = path.read_bytes()
    assert "tick 'Overwrite'" in create("new one")[-1] and path.read_bytes() == before
    assert create("new one", overwrite=True, seed=8)[-1] == "Created new one." and path.read_bytes() != before
    assert create("", sizes=[])[-1].startswith("⚠")
    assert "at least one module width" in create("w", sizes=[], other_sizes="")[-1]
    assert "whole numbers" in create("w", other_sizes="3x")[-1]
    assert create("w", layer_structure="2, 1")[-1].startswith("⚠")
    assert create("pt one", file_format="pt", dropout=True, dropout_structure="0, 0.1, 0", seed=-1)[-1] == "Created pt one."
    made = lib_hypernet.load(folder / "pt one.pt")
    assert made.use_dropout and made.dropout_structure == [0, 0.1, 0]
    assert not [p for p in os.listdir(folder) if p.endswith(".tmp")]


# --------------------------------------------------------------------- the write policy (issue 14)
@pytest.fixture
def linked(folder: Path, tmp_path: Path) -> Path:
    """A sub-folder ``linked`` of the hypernetwork folder that is a symbolic link to a folder outside it."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.copyfile(folder / "act_relu.pt", outside / "far.pt")
    os.symlink(outside, folder / "linked")
    return outside


def test_source_convert_and_repair_never_write_through_a_link_outside(folder: Path, linked: Path) -> None:
    source = LibrarySource(HypernetLibrary(folder))
    source.ensure_scanned()
    assert source.library.find("far").relpath == "linked/far.pt"  # read through the link: listed
    before = (linked / "far.pt").read_bytes()
    with pytest.raises(lib_hypernet.errors.OutsideFolderError, match="outside the hypernetwork folder"):
        source.convert("far", overwrite=True)
    with pytest.raises(lib_hypernet.errors.OutsideFolderError, match="outside the hypernetwork folder"):
        source.repair("far", overwrite=True)
    assert sorted(os.listdir(linked)) == ["far.pt"] and (linked / "far.pt").read_bytes() == before
    assert source.convert("act_relu") == "act_relu"  # inside the folder: written
    assert (folder / "act_relu.safetensors").is_file()


def test_panel_convert_and_repair_never_write_through_a_link_outside(panel: LibraryPanel, linked: Path) -> None:
    before = (linked / "far.pt").read_bytes()
    for on_action in (panel.on_convert, panel.on_repair):
        message = on_action("far", True, "", "name", False)[-1]
        assert message.startswith("⚠") and "outside the hypernetwork folder" in message, message
    assert sorted(os.listdir(linked)) == ["far.pt"] and (linked / "far.pt").read_bytes() == before


def test_create_on_an_existing_file_is_typed_and_the_panel_says_how_to_overwrite(panel: LibraryPanel,
                                                                                  folder: Path) -> None:
    source = panel.source
    path = folder / "taken.pt"
    assert source.create("taken", sizes=[8], seed=1) == "taken"
    before = path.read_bytes()
    with pytest.raises(lib_hypernet.errors.HypernetExistsError) as raised:
        source.create("taken", sizes=[8], seed=2)
    assert raised.value.path == str(path) and "--force" not in str(raised.value)
    assert path.read_bytes() == before

    # The panel's hint follows the error's type, never its wording.
    def refuse() -> str:
        raise lib_hypernet.errors.HypernetExistsError("is taken", path)

    message = panel._act(refuse, str, "", "name", False, None)[-1]
    assert message == f"⚠ {path}: is taken; tick 'Overwrite' to replace it"


@pytest.mark.parametrize(("name", "rule"), [("sub/x", "separator"), (".hidden", "hidden"), ("?!*", "empty")])
def test_a_bad_create_name_is_typed_and_the_panel_names_no_command_line_flag(
    panel: LibraryPanel, folder: Path, name: str, rule: str
) -> None:
    args = dict(name=name, sizes=["768"], other_sizes="", layer_structure="1, 2, 1", activation="relu",
                init="Normal", layer_norm=False, dropout=False, dropout_structure="", activate_output=False,
                file_format="pt", seed=1, info="", overwrite=False, query="", sort="name", descending=False,
                selected=None)
    message = panel.on_create(*args.values())[-1]
    assert message.startswith("⚠") and repr(name) in message, message
    assert "--out" not in message and "DIR" not in message and "--" not in message
    with pytest.raises(lib_hypernet.errors.InvalidNameError) as raised:
        panel.source.create(name, sizes=[8])
    assert raised.value.rule == rule and raised.value.name == name
    assert list(folder.rglob(".hidden*")) == []


# --------------------------------------------------------------------- building
def test_build_panel_with_gradio_3(folder: Path) -> None:
    assert gr.__version__ == "3.41.2" or os.environ.get("HYPERNET_GRADIO_4_CHECK")  # the webui's gradio
    sends = [SendTarget("Send to txt2img", "(tag) => []"), SendTarget("Send to img2img", "(tag) => []")]
    with gr.Blocks() as blocks:
        panel = build_library_panel(LibrarySource(HypernetLibrary(folder), send_targets=sends), elem_prefix="t")
        panel.fill_on_load(blocks)
    config = blocks.get_config_file()
    ids = {c["props"].get("elem_id") for c in config["components"]}
    for name in ("table", "search", "sort", "file", "detail", "strength", "tag", "convert", "repair", "hash", "create",
                 "send_0", "send_1"):
        assert f"t_{name}" in ids, name
    js = [d.get("js") for d in config["dependencies"]]
    assert js.count("(tag) => []") == 2
    assert any(_trigger(d) == "load" for d in config["dependencies"])
    writing = [d for d in config["dependencies"] if _trigger(d) == "click" and d.get("js") is None]
    assert writing and all(d["queue"] is not False for d in writing)


def _trigger(dependency: dict) -> str:
    """The event name of a config dependency (gradio 3: ``trigger``; gradio 4: ``targets`` pairs)."""
    return dependency.get("trigger") or dependency["targets"][0][1]


def test_standalone_has_no_send_buttons(folder: Path) -> None:
    app = build_app(make_source(folder, None))
    ids = {c["props"].get("elem_id") for c in app.get_config_file()["components"]}
    assert "hypernet_lib_table" in ids and not any(str(i).startswith("hypernet_lib_send") for i in ids)


def test_standalone_caches_persist(folder: Path, tmp_path: Path) -> None:
    caches = tmp_path / "caches"
    source = make_source(folder, caches)
    LibraryPanel(source).on_hash("", "name", False, None, progress=Progress())
    saved = sorted(name for name in os.listdir(caches) if not name.endswith(".lock"))  # the hash cache's lock file
    assert saved == ["sd-webui-hypernet-hashes.json", "sd-webui-hypernet-summaries.json"]
    again = make_source(folder, caches)
    again.ensure_scanned()
    assert len(again.library.description_cache) == 5
    assert all(again.library.hash_cache.get(f.path) for f in again.library.files.values())


def test_standalone_command_line(tmp_path: Path, capsys) -> None:
    assert main(["--dir", str(tmp_path / "nope"), "--no-browser"]) == 2
    assert "does not exist: pass --dir" in capsys.readouterr().err


def test_examples_are_small_and_cover_the_cases(tmp_path: Path) -> None:
    written = make_examples(tmp_path)
    assert len(written) == len(EXAMPLES)
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(tmp_path) for f in fs)
    assert total < 10 * 1024 * 1024
    descs = {d.relpath: d for d in HypernetLibrary(tmp_path).describe_all()}
    assert all(d.ok for d in descs.values())
    assert descs["sdxl-newer-torch.pt"].a1111_loadable is False and descs["sdxl-newer-torch.pt"].sd_version == "SDXL"
    assert descs["anime-style.pt"].optim["status"] == "ok"
    assert descs["anime-style.safetensors"].format == "safetensors"
    assert {d.sd_version for d in descs.values()} >= {"SD1", "SD2", "SDXL"}
    assert any("/" in relpath for relpath in descs)
    assert make_examples(tmp_path) == []  # existing files are kept


def test_matches_and_row_of_a_failed_file(tmp_path: Path) -> None:
    from lib_hypernet.library.description import describe_file

    desc = describe_file(tmp_path / "nothing.pt")
    assert matches(desc, "") and matches(desc, "error") and not matches(desc, "relu")
    assert len(row_of(desc)) == len(COLUMNS)


def test_compat_helpers() -> None:
    assert compat.js("() => 1") == ({"_js": "() => 1"} if compat.GRADIO_MAJOR < 4 else {"js": "() => 1"})
    assert compat.js(None) == {}
    assert compat.dropdown_choices([("a [hash]", "a")]) == (["a"] if compat.GRADIO_MAJOR < 4 else [("a [hash]", "a")])
    assert compat.update(value=1) == gr.update(value=1)
    table = gr.Dataframe(headers=["a", "b"])
    for rows in ([], [["x", 1]]):
        value = compat.table_value(["a", "b"], rows)
        shown = table.postprocess(value)
        shown = shown if isinstance(shown, dict) else shown.model_dump()  # gradio 4: a DataframeData model
        assert shown["headers"] == ["a", "b"] and shown["data"] == (rows or shown["data"])


def test_bench_library_runs(capsys) -> None:
    import importlib.util

    path = REPO_ROOT / "benchmarks" / "bench_library.py"
    spec = importlib.util.spec_from_file_location("bench_library", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--files", "12"]) == 0
    out = capsys.readouterr().out
    for label in ("first scan", "restart (warm", "panel build", "panel fill", "compute every hash"):
        assert f"| {label}" in out, label


def test_detail_lists_widths_in_numeric_order_after_a_restart(tmp_path: Path) -> None:
    # A1111's default sizes; the persisted description cache sorts its JSON keys as strings (1280 first)
    folder = tmp_path / "hypernetworks"
    folder.mkdir()
    lib_hypernet.create("sd1", sizes=(768, 320, 640, 1280), layer_structure=[1, 0.01, 1], seed=1).save(folder / "sd1.pt")
    LibraryPanel(make_source(folder, tmp_path / "caches")).view()  # the first start writes the cache
    restarted = make_source(folder, tmp_path / "caches")
    html, _ = LibraryPanel(restarted).on_file("sd1", 0.8)
    assert restarted.library.description_cache.get(*_stat(folder / "sd1.pt")) is not None  # read from the cache
    modules = html.split("data-key='modules'>", 1)[1].split("</td>", 1)[0]
    assert [line.split(":")[0] for line in modules.split("<br>")] == ["320", "640", "768", "1280"]
    assert "<td data-key='widths'>320, 640, 768, 1280</td>" in html


def _stat(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(path), st.st_size, st.st_mtime_ns


# --------------------------------------------------------------------- issue 16: the panel shows what is wrong
def _bad_activation(path: Path) -> None:
    """A legacy .pt whose activation name A1111 does not know: safe (plain data), but it cannot be loaded."""
    state = lib_hypernet.create("x", sizes=[8], activation_func="relu", seed=1).state_dict()
    state["activation_func"] = "swishy"
    torch.save(state, path, _use_new_zipfile_serialization=False)


@pytest.fixture
def troubled(folder: Path) -> Path:
    """The fixtures (A1111 1.10.1 refuses each), one .pt A1111 loads, a truncated file, a bad activation."""
    lib_hypernet.load(folder / "act_relu.pt").save(folder / "loads.pt")
    data = (folder / "act_relu.pt").read_bytes()
    (folder / "cut.pt").write_bytes(data[: len(data) // 3])
    _bad_activation(folder / "swishy.pt")
    return folder


def test_status_column_comes_first_and_marks_what_is_wrong(troubled: Path) -> None:
    panel = LibraryPanel(LibrarySource(HypernetLibrary(troubled)))
    view = panel.view()
    assert COLUMNS[0] == "status" and "A1111 loads" in COLUMNS
    # the columns that matter come before the long ones (which may scroll at 1366 px)
    assert COLUMNS.index("size") < COLUMNS.index("relative path") and COLUMNS.index("safe") < COLUMNS.index("base model")
    rows = {row[NAME_COLUMN]: dict(zip(COLUMNS, row)) for row in _rows(view)}
    assert "hypernet-lib-repair" in rows["act_relu"]["status"] and ">A1111 cannot load — repair<" in rows["act_relu"]["status"]
    assert rows["act_relu"]["A1111 loads"] == "no"
    assert "hypernet-lib-ok" in rows["loads"]["status"] and rows["loads"]["A1111 loads"] == "yes"
    cut = rows["cut"]["status"]
    assert "hypernet-lib-broken" in cut and ">broken — not a readable PyTorch file" in cut and "data-hn='cut'" in cut
    assert str(troubled) not in cut  # the reason, not the path
    assert "hypernet-lib-broken" in rows["swishy"]["status"] and "swishy" in rows["swishy"]["status"]
    assert "2 broken" in view.status and "5 that A1111 cannot load" in view.status
    assert _names(panel.view("repair")) == [n for n in view.names if "repair" in rows[n]["status"]]
    assert _names(panel.view("broken")) == ["cut", "swishy"]
    assert panel.view("", "status").names[:2] == ["cut", "swishy"]  # broken first


def test_safe_is_only_about_code_execution(troubled: Path) -> None:
    """A file with an unknown activation is safe (the CLI says "safe: yes") and broken; never "safe: error"."""
    panel = LibraryPanel(LibrarySource(HypernetLibrary(troubled)))
    rows = {row[NAME_COLUMN]: dict(zip(COLUMNS, row)) for row in _rows(panel.view())}
    assert rows["swishy"]["safe"] == "yes"
    html, tag = panel.on_file("swishy", 0.8)
    safe = html.split("data-key='safe'>", 1)[1].split("</td>", 1)[0]
    assert safe.startswith("yes: only allow-listed pickle globals") and "error" not in safe
    assert "hypernet-lib-error" in html and "swishy" in html and tag == ""


def test_one_wording_repair_for_a_pt_a1111_cannot_load(folder: Path) -> None:
    panel = LibraryPanel(LibrarySource(HypernetLibrary(folder)))
    html, _ = panel.on_file("act_relu", 0.8)
    assert "repair it" in html and "convert it" not in html
    assert "Repair rewrites the .pt" in html.split("data-key='A1111 loads'>", 1)[1].split("</td>", 1)[0]
    message = panel.on_repair("act_relu", False, "", "name", False)[-1]
    assert "repair" in message.lower() and "convert" not in message.lower()


def test_broken_files_offer_no_tag_and_no_action_that_cannot_work(troubled: Path) -> None:
    sends = [SendTarget("Send to txt2img", "(tag) => []")]
    panel = LibraryPanel(LibrarySource(HypernetLibrary(troubled), send_targets=sends))
    panel.source.convert("loads")  # loads.safetensors: the plain name "loads" is the .safetensors now

    def state(name: str) -> dict:
        _detail, tag, convert, repair, highlight, send = panel.selection(name, 0.8)
        return {"tag": tag, "convert": convert["interactive"], "repair": repair["interactive"],
                "send": send["interactive"], "highlight": highlight}

    for broken in ("cut", "swishy"):
        assert state(broken) | {"highlight": ""} == {"tag": "", "convert": False, "repair": False, "send": False,
                                                     "highlight": ""}, broken
        assert panel.on_strength(broken, 1.0) == ""
    assert state("act_relu") | {"highlight": ""} == {"tag": "<hypernet:act_relu:0.8>", "convert": True, "repair": True,
                                                     "send": True, "highlight": ""}
    assert state("loads.pt")["repair"] is False and state("loads.pt")["convert"] is True  # A1111 loads it already
    assert state("loads")["convert"] is False and state("loads")["repair"] is False  # a .safetensors
    assert panel.on_strength("act_relu", 1.0) == "<hypernet:act_relu:1>"
    nothing = panel.selection(None, 0.8)
    assert nothing[1] == "" and nothing[2]["interactive"] is False and nothing[4] == ""


def test_the_selected_row_is_highlighted_by_its_name(folder: Path) -> None:
    panel = LibraryPanel(LibrarySource(HypernetLibrary(folder)), elem_prefix="p")
    css = panel.selection("act_relu", 0.8)[4]
    assert css.startswith("<style>") and '#p_table tr:has([data-hn="act_relu"])' in css
    assert "data-hn='act_relu'" in _rows(panel.view())[1][0]  # the status cell names its file
    from lib_hypernet.ui.library_panel import selected_row_css

    odd = selected_row_css('a"b\\c</style><script>', "t")
    assert "</style><script>" not in odd[len("<style>"):-len("</style>")]
    assert '[data-hn="a\\"b\\\\c\\3c /style\\3e \\3c script\\3e "]' in odd


def test_the_detail_shows_the_preview_image_beside_the_file(folder: Path) -> None:
    from PIL import Image

    from lib_hypernet.library.folder import find_preview

    panel = LibraryPanel(LibrarySource(HypernetLibrary(folder)))
    assert "<img" not in panel.on_file("act_relu", 0.8)[0]
    Image.new("RGB", (4, 4), (200, 10, 10)).save(folder / "act_relu.preview.png")
    html = panel.on_file("act_relu", 0.8)[0]
    assert "<img class='hypernet-lib-preview'" in html and "src='data:image/png;base64," in html
    Image.new("RGB", (4, 4)).save(folder / "act_relu.png")  # A1111 looks at <name>.png first
    assert find_preview(folder / "act_relu.pt") == str(folder / "act_relu.png")
    (folder / "styles" / "act_gelu.preview.jpg").write_bytes(b"\xff\xd8\xff")
    assert "data:image/jpeg;base64," in panel.on_file("act_gelu", 0.8)[0]


def test_panel_css_uses_the_hosts_theme_variables_only() -> None:
    """The webui's dark theme (and the standalone page's) restyle the panel: no fixed colour in our CSS."""
    from lib_hypernet.ui.library_panel import PANEL_CSS, selected_row_css

    for css in (PANEL_CSS, selected_row_css("x", "t")):
        assert not re.findall(r"#[0-9a-fA-F]{3,8}\b|rgba?\(|hsla?\(|:\s*(white|black|red|orange)\b", css), css
        assert "var(--" in css
    for name in ("--error-icon-color", "--error-text-color", "--color-accent", "--color-accent-soft"):
        assert name in PANEL_CSS + selected_row_css("x", "t")


def test_standalone_theme_option(folder: Path) -> None:
    from lib_hypernet.ui.__main__ import parse_args

    assert parse_args(["--theme", "dark"]).theme == "dark" and parse_args([]).theme == "system"
    for theme, expected in (("dark", "toggle('dark', true)"), ("light", "toggle('dark', false)")):
        config = build_app(make_source(folder, None), theme=theme).get_config_file()
        scripts = [d.get("js") or "" for d in config["dependencies"] if _trigger(d) == "load"]
        assert any(expected in js for js in scripts), scripts
    config = build_app(make_source(folder, None)).get_config_file()  # system: gradio follows prefers-color-scheme
    assert not any("classList" in (d.get("js") or "") for d in config["dependencies"])


# --------------------------------------------------------------------- issue 16: batch actions in the panel
BATCH_OUT = ("table", "names", "files", "status", "detail", "tag", "convert", "repair", "highlight", "message")


def test_repair_all_in_the_panel_asks_then_repairs_with_progress(troubled: Path) -> None:
    panel = LibraryPanel(LibrarySource(HypernetLibrary(troubled)))
    refused = [n for n in panel.view().names if n in ("act_relu", "dims_24_32_48_meta", "legacy_novelai",
                                                      "optim_fresh_a", "act_gelu")]
    before = {p: p.read_bytes() for p in troubled.rglob("*.pt")}
    out = dict(zip(BATCH_OUT, panel.on_repair_all(False, "", "name", False, None, 0.8, progress=Progress())))
    assert {p: p.read_bytes() for p in troubled.rglob("*.pt")} == before
    assert out["message"].startswith("Repaired 0 of 8 files; 1 was fine; 5 need a repair (tick 'Overwrite'); 2 failed.")
    assert "Tick 'Overwrite' to repair 5 files A1111 cannot load" in out["message"]

    progress = Progress()
    out = dict(zip(BATCH_OUT, panel.on_repair_all(True, "", "name", False, "act_relu", 0.8, progress=progress)))
    assert out["message"].splitlines()[0] == "Repaired 5 of 8 files; 1 was fine; 2 failed."
    assert "- cut.pt: failed: not a readable PyTorch file" in out["message"]
    assert progress.calls[0] == ((0, 8), "repairing act_gelu") and progress.calls[-1] == ((8, 8), "repaired")
    for name in refused:
        path = panel.source.library.files[name].path
        assert a1111_zip_entries_rejected(path) == [], name
    assert "A1111 cannot load" not in out["status"] and out["files"]["value"] == "act_relu"
    assert out["repair"]["interactive"] is False  # the selected file loads in A1111 now
    assert panel.source.describe("optim_fresh_a").optim["status"] == "ok"  # .optim kept in step


def test_convert_all_in_the_panel_never_overwrites_without_the_tick(folder: Path) -> None:
    panel = LibraryPanel(LibrarySource(HypernetLibrary(folder)))
    (folder / "act_relu.safetensors").write_bytes(b"keep me")
    out = dict(zip(BATCH_OUT, panel.on_convert_all(False, "", "name", False, None, 0.8, progress=Progress())))
    assert out["message"].splitlines()[0] == ("Converted 4 of 5 files; 1 not written (the .safetensors exists); 0 failed. "
                                              "Tick 'Overwrite' to replace the 1 existing .safetensors.")
    assert "- act_relu.pt: not written: already exists" in out["message"].replace("\n", " ")
    assert (folder / "act_relu.safetensors").read_bytes() == b"keep me"
    assert (folder / "styles" / "act_gelu.safetensors").is_file() and (folder / "legacy_novelai.safetensors").is_file()
    out = dict(zip(BATCH_OUT, panel.on_convert_all(True, "", "name", False, None, 0.8, progress=Progress())))
    assert out["message"].startswith("Converted 5 of 5 files; 0 failed."), out["message"]
    assert lib_hypernet.load(folder / "act_relu.safetensors").widths == [8, 16]


def test_panel_has_the_batch_buttons(folder: Path) -> None:
    with gr.Blocks() as blocks:
        build_library_panel(LibrarySource(HypernetLibrary(folder)))
    config = blocks.get_config_file()
    labels = {c["props"].get("elem_id"): c["props"].get("value") for c in config["components"]}
    assert labels["hypernet_lib_repair_all"] == "Repair all"
    assert labels["hypernet_lib_convert_all"] == "Convert all to .safetensors"
    assert "hypernet_lib_batch_result" in labels
