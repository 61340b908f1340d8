"""One bad file never breaks anything: under the real webui's conditions (``modules.safe``'s ``torch.load``,
pytorch_lightning's pure-Python ``pickle.Unpickler``, gradio's ORJSON app), a folder of good, truncated,
malicious and garbage files lists, answers every route and generates per file — the good ones work, the bad
ones are reported (in the list with their error, under the image)."""

from __future__ import annotations

import os
import shutil
import zipfile

import pytest
import torch
import webui_util as wu
from fastapi.testclient import TestClient
from modules import errors, safe

TRUNCATE_AT = (10, 100, 1000, "half", "minus1")


def _cut(src: str, dst: str, at: int | str) -> str:
    with open(src, "rb") as f:
        data = f.read()
    n = {"half": len(data) // 2, "minus1": len(data) - 1}.get(at, at)  # type: ignore[arg-type]
    with open(dst, "wb") as f:
        f.write(data[:n])
    return dst


def write_zip_like_a1111(name: str, legacy_path: str) -> str:
    """The same weights saved the way A1111's ``Hypernetwork.save`` does on torch >= 2.1: ``torch.save`` of the
    plain dict, a zip with ``.format_version`` and ``.storage_alignment`` (refused by ``modules.safe``)."""
    state = torch.serialization.load(legacy_path, map_location="cpu", weights_only=True)
    path = os.path.join(wu.hn_dir(), f"{name}.pt")
    torch.save(state, path)
    names = zipfile.ZipFile(path).namelist()
    assert any(n.endswith("/.format_version") for n in names), names
    return path


def _folder(tmp_path) -> dict[str, list[str]]:
    good = wu.write_hn("good", seed=1)
    wu.write_hn("other", seed=2)
    write_zip_like_a1111("zipgood", good)
    bad = []
    for at in TRUNCATE_AT:
        bad.append(os.path.basename(_cut(good, os.path.join(wu.hn_dir(), f"cut_legacy_{at}.pt"), at))[:-3])
        zipped = os.path.join(wu.hn_dir(), "zipgood.pt")
        bad.append(os.path.basename(_cut(zipped, os.path.join(wu.hn_dir(), f"cut_zip_{at}.pt"), at))[:-3])
    wu.write_malicious(os.path.join(wu.hn_dir(), "evil.pt"), str(tmp_path / "pwned"))
    with open(os.path.join(wu.hn_dir(), "garbage.pt"), "wb") as f:
        f.write(os.urandom(5000))
    open(os.path.join(wu.hn_dir(), "empty.pt"), "wb").close()
    with open(os.path.join(wu.hn_dir(), "junk.safetensors"), "wb") as f:
        f.write(b"\xff" * 8 + b"{")
    bad += ["evil", "garbage", "empty", "junk"]
    return {"good": ["good", "other", "zipgood"], "bad": bad}


@pytest.fixture(params=["ui", "nowebui"])
def folder(request, tmp_path):
    wu.reset(tmp_path)
    try:
        names = _folder(tmp_path)
        app = wu.start(nowebui=request.param == "nowebui", args=["--api"])
        yield TestClient(app), names
    finally:
        wu.webui.unload()
    assert not (tmp_path / "pwned").exists()


def test_listing_and_every_route_treat_each_file_on_its_own(folder):
    client, names = folder
    response = client.get("/hypernet/v1/hypernetworks?refresh=true")
    assert response.status_code == 200, response.text
    items = {item["name"]: item for item in response.json()}
    for name in names["good"]:
        assert not items[name].get("error"), (name, items[name].get("error"))
        assert items[name]["widths"] == list(wu.SD1_TINY_WIDTHS)
    for name in names["bad"]:
        assert items[name].get("error"), name
        assert "NoneType" not in items[name]["error"], items[name]["error"]
    for name in items:
        response = client.get(f"/hypernet/v1/hypernetworks/{name}")
        assert response.status_code == 200, (name, response.text)
        assert bool(response.json().get("error")) == (name in names["bad"]), name
    assert client.post("/hypernet/v1/refresh").status_code == 200
    for name in names["bad"]:
        response = client.post("/hypernet/v1/convert", json={"name": name})
        assert response.status_code == 400, (name, response.text)
    response = client.post("/hypernet/v1/convert", json={"name": "zipgood"})
    assert response.status_code == 200, response.text


def test_a1111_zip_file_loads_like_its_legacy_twin(folder):
    assert wu.same(wu.gen("<hypernet:zipgood:0.8>a cat"), wu.gen("<hypernet:good:0.8>a cat"))
    # our own check read it; the host's patched torch.load (which refuses it and returns None) was never asked
    assert not any(p.endswith("zipgood.pt") for p in safe.refused), safe.refused
    assert not any("zipgood" in m for m in errors.messages())


@pytest.mark.parametrize("bad", ["cut_legacy_1000", "cut_zip_half", "cut_legacy_minus1", "evil", "garbage", "empty"])
def test_generation_with_a_good_and_a_bad_tag_applies_the_good_one(folder, bad):
    only_good = wu.gen("<hypernet:good:0.8>a cat")  # (the stand-in's text encoder sees the prompt without tags)
    res = wu.gen(f"<hypernet:good:0.8><hypernet:{bad}:1><hypernet:missing:1>a cat")
    assert wu.same(res, only_good)
    comments = wu.comments(res)
    assert any(bad in c and "failed to load" in c for c in comments), comments
    assert any("missing" in c and "not found" in c for c in comments), comments  # other messages stay
    assert "Hypernet hashes" in res.infotexts[0] and "good:" in res.infotexts[0]


def test_an_unexpected_error_of_any_kind_drops_only_its_tag(folder, monkeypatch, caplog):
    library = wu.extension().library
    real_get = library.get

    def get(file):
        if getattr(file, "name", file) == "other":
            raise RuntimeError("boom inside a loader")
        return real_get(file)

    monkeypatch.setattr(library, "get", get)
    only_good = wu.gen("<hypernet:good:0.8>a cat")
    res = wu.gen("<hypernet:other:1><hypernet:good:0.8><hypernet:missing:1>a cat")
    assert wu.same(res, only_good)
    comments = wu.comments(res)
    assert any("other" in c and "RuntimeError" in c and "boom" in c for c in comments), comments
    assert any("missing" in c for c in comments), comments
    assert any(r.exc_info and "boom" in str(r.exc_info[1]) for r in caplog.records)  # logged with traceback


def test_truncated_copies_of_a1111_fixtures(tmp_path, fixtures_dir):
    """The A1111 fixtures (zip, saved by A1111's own Hypernetwork.save) and cut copies, through the real script."""
    wu.reset(tmp_path)
    try:
        os.makedirs(wu.hn_dir(), exist_ok=True)
        for case in ("act_relu", "ls_1_2_2_1_relu_ln", "legacy_novelai"):
            src = str(fixtures_dir / f"{case}.pt")
            shutil.copy(src, os.path.join(wu.hn_dir(), f"{case}.pt"))
            for at in TRUNCATE_AT:
                _cut(src, os.path.join(wu.hn_dir(), f"{case}_cut_{at}.pt"), at)
        client = TestClient(wu.start(args=["--api"]))
        items = {i["name"]: i for i in client.get("/hypernet/v1/hypernetworks").json()}
        for case in ("act_relu", "ls_1_2_2_1_relu_ln", "legacy_novelai"):
            assert not items[case].get("error"), (case, items[case].get("error"))
            for at in TRUNCATE_AT:
                assert items[f"{case}_cut_{at}"].get("error"), (case, at)
                assert client.get(f"/hypernet/v1/hypernetworks/{case}_cut_{at}").status_code == 200
        res = wu.gen("a cat <hypernet:act_relu:1> <hypernet:act_relu_cut_half:1>")
        comments = wu.comments(res)
        assert not any("act_relu:" in c or ("act_relu " in c and "failed" in c) for c in comments), comments
        assert any("act_relu_cut_half" in c and "failed to load" in c for c in comments), comments
    finally:
        wu.webui.unload()
