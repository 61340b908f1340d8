"""One description of a file (``lib_hypernet.library.description``) and its persisted cache, as the CLI, API and UI use them."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hn_testutil import CopyFixtures, TouchViaSystem

import lib_hypernet
from lib_hypernet import cli
from lib_hypernet.cli.render import render_info
from lib_hypernet.library import description
from lib_hypernet.library.caches import DescriptionCache
from lib_hypernet.library.description import REPAIR_WARNING, FileDescription, ModelFacts, describe_file
from lib_hypernet.library.folder import HypernetLibrary
from lib_hypernet.library.service import HypernetService
from lib_hypernet.model import family
from lib_hypernet.model.family import SdVersion


@pytest.mark.parametrize(
    ("widths", "expected"),
    [
        ([768, 320, 640, 1280], "SD1"),
        ([1024, 320, 640, 1280], "SD2"),
        ([2048, 640, 1280], "SDXL"),
        ([320, 640, 1280], "SD1/SDXL"),  # self-attention widths are shared
        ([640], "SD1/SDXL"),
        ([768, 1024], "SD1+SD2"),
        ([8, 16], None),
        ([], None),
    ],
)
def test_version_label(widths: list[int], expected: str | None) -> None:
    assert family.version_label(widths) == expected


def test_context_family_and_fits() -> None:
    assert family.context_family([768, 320]) is SdVersion.SD1 and family.context_family([2048, 640]) is SdVersion.SDXL
    assert family.context_family([768, 1024]) is None and family.context_family([320, 640]) is None
    assert family.fits("SD1/SDXL", SdVersion.SDXL) and not family.fits("SD1/SDXL", SdVersion.SD2)
    assert family.fits("SD1+SD2", SdVersion.SD2) and not family.fits("SD1", SdVersion.SDXL)
    assert family.fits(None, SdVersion.SDXL) and family.fits("Unknown", SdVersion.SD1) and family.fits("SD1", None)
    assert SdVersion.SDXL.widths == (2048, 640, 1280) and SdVersion.of_label("SD2") is SdVersion.SD2


def test_family_of_a_model_flags_then_context_width() -> None:
    """The flags decide; a model without them is known by its UNet's ``context_dim`` (e.g. a UNet only)."""
    flags = SimpleNamespace(is_sdxl=False, is_sd2=True, is_sd1=False)
    assert family.of_model(flags, SimpleNamespace(context_dim=2048)) is SdVersion.SD2
    assert family.of_model(SimpleNamespace(), SimpleNamespace(context_dim=2048)) is SdVersion.SDXL
    assert family.of_model(SimpleNamespace(), SimpleNamespace(context_dim=[768])) is None
    assert family.of_model(SimpleNamespace(), None) is None


def test_describes_a_fixture_like_the_manifest(fixtures_dir: Path, cases_by_name: dict) -> None:
    desc = describe_file(fixtures_dir / "dims_24_32_48_meta.pt")
    case = cases_by_name["dims_24_32_48_meta"]
    assert desc.ok and desc.error is None
    assert desc.name == "dims_24_32_48_meta" and desc.format == "pt" and desc.container == "zip"
    assert desc.size == case["file_size"] and desc.mtime_ns == os.stat(fixtures_dir / "dims_24_32_48_meta.pt").st_mtime_ns
    assert desc.sha256 == case["sha256"] and desc.shorthash == case["shorthash"] == "e35e8dc32d"
    assert desc.widths == case["loaded"]["dims"] and desc.param_count == case["param_count"]
    assert desc.sd_checkpoint == "a1b2c3d4e5" and desc.sd_checkpoint_name == "random-sd15" and desc.step == 1500
    assert desc.optional_info == "fixture: dims 24/32/48 with training metadata"
    assert desc.module_widths == {"24": [24, 48, 24], "32": [32, 64, 32], "48": [48, 96, 48]}
    assert desc.safe is True and desc.a1111_loadable is False
    assert desc.warnings == [REPAIR_WARNING]
    assert desc.optim is not None and desc.optim["status"] == "missing"
    assert desc.sd_version is None


def test_json_is_plain_for_orjson(fixtures_dir: Path) -> None:
    """A1111 renders routes with orjson, which refuses int keys (the webui tests render through orjson itself;
    here the round trip through ``json`` fails on an int key as well: it comes back as a string)."""
    data = describe_file(fixtures_dir / "dropout_1_2_2_1_elu_ln.pt").to_json(ModelFacts("ffff", "m", (768,)))
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert all(isinstance(k, str) for k in data["module_widths"]) and all(isinstance(k, str) for k in data["modules"])
    plain = describe_file(fixtures_dir / "dropout_1_2_2_1_elu_ln.pt").to_json()
    assert FileDescription.from_json(json.loads(json.dumps(plain, allow_nan=False))).to_json() == plain


def test_json_has_no_nan() -> None:
    """``to_json`` is the one converter: a NaN or infinity (a damaged cache, a hostile file) becomes null."""
    desc = FileDescription(path="x.pt", layer_structure=[1, math.nan, 1], dropout_structure=[0, math.inf, 0],
                           module_widths={8: [8, 16, 8]}, ok=True)  # type: ignore[dict-item]
    data = desc.to_json()
    text = json.dumps(data, allow_nan=False)
    assert json.loads(text)["layer_structure"] == [1, None, 1] and data["dropout_structure"] == [0, None, 0]
    assert data["module_widths"] == {"8": [8, 16, 8]}


@pytest.mark.parametrize("model_hash", ["0123456789", " A1B2C3D4E5 ", "a1b2c3d4e5f60718", "A1B2"])
def test_one_checkpoint_rule_and_words(copy_fixtures: CopyFixtures, tmp_path: Path, model_hash: str) -> None:
    """The generation's message and the description's warning: the same verdict (blanks and capitals aside, a
    short hash is a prefix of the sha256) and the same words."""
    folder = tmp_path / "hn"
    copy_fixtures(folder, "dims_24_32_48_meta.pt")  # trained on random-sd15 [a1b2c3d4e5]
    service = HypernetService(HypernetLibrary(folder))
    prepared = service.prepare([["dims_24_32_48_meta"]])
    messages = service.base_model_messages(prepared, model_hash, "sd15-pruned")
    desc = describe_file(folder / "dims_24_32_48_meta.pt")
    warnings = [w for w in desc.warnings_for(ModelFacts(model_hash, "sd15-pruned")) if w != REPAIR_WARNING]
    assert messages == [f"Hypernet dims_24_32_48_meta was {w}" for w in warnings]
    assert bool(messages) == (model_hash == "0123456789")


def test_truncated_pt_is_not_called_loadable(fixtures_dir: Path, tmp_path: Path, capsys) -> None:
    data = (fixtures_dir / "act_relu.pt").read_bytes()
    for path in (tmp_path / "truncated.pt", tmp_path / "legacy-truncated.pt"):
        path.write_bytes(data[: len(data) // 2])
        desc = describe_file(path)
        assert not desc.ok and desc.error and str(path) in desc.error
        assert desc.a1111_loadable is None and desc.warnings == []
        assert desc.sha256 == lib_hypernet.sha256(path)
        text = render_info(desc.to_json())
        assert "A1111 loads" not in text and "error:" in text
    legacy = tmp_path / "legacy.pt"
    lib_hypernet.load(fixtures_dir / "act_relu.pt").save(legacy)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(legacy.read_bytes()[:-200])
    desc = describe_file(cut)
    assert not desc.ok and desc.a1111_loadable is None
    assert "A1111 loads" not in render_info(desc.to_json())
    assert cli.main(["info", str(cut)]) == 1
    assert "A1111 loads" not in capsys.readouterr().out


def test_unsafe_file_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({768: TouchViaSystem(marker)}, evil)
    desc = describe_file(evil)
    assert desc.safe is False and not desc.ok and "system" in (desc.error or "")
    assert desc.a1111_loadable is None
    assert not marker.exists()


def test_missing_and_odd_files(tmp_path: Path) -> None:
    missing = describe_file(tmp_path / "nope.pt")
    assert not missing.ok and "file not found" in (missing.error or "") and missing.size is None
    folder = tmp_path / "dir.pt"
    folder.mkdir()
    assert "not a regular file" in (describe_file(folder).error or "")
    other = tmp_path / "x.ckpt"
    other.write_bytes(b"12345")
    desc = describe_file(other)
    assert not desc.ok and "unknown hypernetwork file type" in (desc.error or "")
    no_hash = describe_file(other, hash_file=False)
    assert no_hash.sha256 is None


def test_optim_verdicts(fixtures_dir: Path) -> None:
    assert describe_file(fixtures_dir / "optim_fresh_a.pt", hash_file=False).optim["status"] == "ok"
    stale = describe_file(fixtures_dir / "optim_stale.pt", hash_file=False)
    assert stale.optim["status"] == "stale" and stale.sha256  # hashed because a .optim is there


def test_model_warnings(fixtures_dir: Path) -> None:
    desc = describe_file(fixtures_dir / "dims_24_32_48_meta.pt")
    assert desc.warnings_for(None) == [REPAIR_WARNING]
    same = ModelFacts(checkpoint_hash="a1b2c3d4e5", checkpoint_name="random-sd15", widths=(24, 320))
    assert desc.warnings_for(same) == [REPAIR_WARNING]
    other = ModelFacts.for_family(SdVersion.SD1, "0123456789", "sd15-pruned")
    found = desc.warnings_for(other)
    assert any(w.startswith("trained on another checkpoint: random-sd15 [a1b2c3d4e5]") and "sd15-pruned" in w
               for w in found)
    assert any(w.startswith("no width matches the loaded model") for w in found)
    assert desc.to_json(other)["warnings"] == found
    assert desc.to_json()["warnings"] == [REPAIR_WARNING]  # the description itself is not changed
    assert ModelFacts.for_family(SdVersion.SDXL).widths == (2048, 640, 1280)


# --------------------------------------------------------------------- the cache
def test_cache_valid_until_the_file_or_its_optim_changes(copy_fixtures: CopyFixtures, tmp_path: Path) -> None:
    copy_fixtures(tmp_path, "optim_fresh_a.pt", "optim_fresh_a.pt.optim")
    path = str(tmp_path / "optim_fresh_a.pt")
    cache = DescriptionCache()
    desc = describe_file(path)
    cache.put(desc)
    st = os.stat(path)
    assert cache.get(path, st.st_size, st.st_mtime_ns) == desc
    assert cache.get(path, st.st_size + 1, st.st_mtime_ns) is None
    assert cache.get(path, st.st_size, st.st_mtime_ns + 1) is None
    os.utime(path + ".optim", ns=(st.st_mtime_ns + 10**9, st.st_mtime_ns + 10**9))
    assert cache.get(path, st.st_size, st.st_mtime_ns) is None  # the .optim verdict may have changed
    cache.put(FileDescription(path=str(tmp_path / "gone.pt")))  # never stat-ed: not cached
    assert len(cache) == 1


def test_cache_persists_and_merges(copy_fixtures: CopyFixtures, tmp_path: Path) -> None:
    copy_fixtures(tmp_path, "act_relu.pt", "act_gelu.pt")
    store = tmp_path / "summaries.json"
    a, b = DescriptionCache(), DescriptionCache.load(store)
    a.put(describe_file(tmp_path / "act_relu.pt"))
    b.put(describe_file(tmp_path / "act_gelu.pt"))
    a.save(store)
    b.save(store)  # another process saving later keeps a's entry
    loaded = DescriptionCache.load(store)
    for name in ("act_relu.pt", "act_gelu.pt"):
        st = os.stat(tmp_path / name)
        got = loaded.get(tmp_path / name, st.st_size, st.st_mtime_ns)
        assert got is not None and got.to_json() == describe_file(tmp_path / name).to_json()
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    store.write_text("{not json", encoding="utf-8")
    assert len(DescriptionCache.load(store)) == 0
    store.write_text(json.dumps({"version": 1, "entries": {"x": {"size": 1, "description": "junk"}}}), encoding="utf-8")
    assert DescriptionCache.load(store).get("x", 1, 0) is None
    assert len(DescriptionCache.load(tmp_path / "missing.json")) == 0


def test_library_reads_each_file_once_then_from_the_persisted_cache(
    fixtures_dir: Path, copy_fixtures: CopyFixtures, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "hn"
    copy_fixtures(folder, "act_relu.pt", "dims_24_32_48_meta.pt")
    store = tmp_path / "summaries.json"
    first = HypernetLibrary(folder)
    before = {d.name: d.to_json() for d in first.describe_all()}
    first.description_cache.save(store)

    def no_load(path):
        raise AssertionError(f"loaded {path} although its description is cached")

    monkeypatch.setattr(description, "load", no_load)
    second = HypernetLibrary(folder, description_cache=DescriptionCache.load(store))
    assert {d.name: d.to_json() for d in second.describe_all()} == before

    # a changed file is re-read
    monkeypatch.undo()
    lib_hypernet.load(fixtures_dir / "act_gelu.pt").save(folder / "act_relu.pt")
    second.refresh()
    changed = second.describe(second.files["act_relu"])
    assert changed.activation_func == "gelu" and changed.container == "legacy" and changed.a1111_loadable is True


def test_library_describe_never_raises(copy_fixtures: CopyFixtures, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "hn"
    copy_fixtures(folder, "act_relu.pt")
    (folder / "broken.safetensors").write_bytes(b"\x00" * 10)
    library = HypernetLibrary(folder)
    descs = {d.name: d for d in library.describe_all()}
    assert descs["act_relu"].ok and not descs["broken"].ok and descs["broken"].error

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("lib_hypernet.library.folder.describe_file", boom)
    fresh = HypernetLibrary(folder)
    desc = fresh.describe_all()[0]
    assert not desc.ok and "disk on fire" in (desc.error or "")
    assert fresh.summary(fresh.files["act_relu"])["error"]


def test_service_list_and_info_use_the_description(copy_fixtures: CopyFixtures, tmp_path: Path) -> None:
    folder = tmp_path / "hn"
    copy_fixtures(folder, "act_relu.pt", "dims_24_32_48_meta.pt")
    service = HypernetService(HypernetLibrary(folder))
    model = ModelFacts.for_family(SdVersion.SD1, "0123456789", "other")
    items = {item["name"]: item for item in service.list(model=model)}
    assert json.loads(json.dumps(items, allow_nan=False)) == items  # plain JSON (orjson: tests/webui)
    meta = items["dims_24_32_48_meta"]
    assert meta["shorthash"] == "e35e8dc32d" and meta["sd_version"] is None
    assert any(w.startswith("trained on another checkpoint") for w in meta["warnings"])
    info = service.info("act_relu")
    assert info["tag"] == "<hypernet:act_relu:1>" and info["relpath"] == "act_relu.pt"
    assert set(info) - {"tag"} == set(describe_file(folder / "act_relu.pt").to_json())


def test_widths_come_back_in_numeric_order_from_the_persisted_cache(tmp_path: Path) -> None:
    path = tmp_path / "sd1.pt"
    lib_hypernet.create("sd1", sizes=(768, 320, 640, 1280), layer_structure=[1, 0.01, 1], seed=1).save(path)
    cache = DescriptionCache()
    cache.put(describe_file(path))
    cache.save(tmp_path / "summaries.json")  # JSON with sorted keys: "1280" < "320"
    st = path.stat()
    again = DescriptionCache.load(tmp_path / "summaries.json").get(path, st.st_size, st.st_mtime_ns)
    assert again is not None
    assert list(again.modules) == list(again.module_widths) == ["320", "640", "768", "1280"]
    assert description.by_width({"1280": "a", "320": "b", "64": "c", "x": "d"}) == [
        ("64", "c"), ("320", "b"), ("1280", "a"), ("x", "d")]
