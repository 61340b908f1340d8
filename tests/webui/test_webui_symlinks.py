"""Sub-folder symlinks: reading through them works (linked model folders are common in A1111 setups);
writing through a link to a place outside the hypernetwork folder is refused."""

from __future__ import annotations

import os

import pytest
import webui_util as wu
from fastapi.testclient import TestClient

import lib_hypernet
from lib_hypernet.errors import OutsideFolderError
from lib_hypernet.library import actions


@pytest.fixture
def linked(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    wu.reset(tmp_path / "data")
    try:
        wu.write_hn("inside", seed=1)
        lib_hypernet_hn = wu.make_hn("far", seed=2)
        lib_hypernet_hn.save(str(outside / "far.pt"))
        os.symlink(outside, os.path.join(wu.hn_dir(), "linked"))
        yield TestClient(wu.start(nowebui=True)), outside
    finally:
        wu.webui.unload()


def test_reading_follows_linked_folders(linked):
    client, _outside = linked
    items = {i["name"]: i for i in client.get("/hypernet/v1/hypernetworks").json()}
    assert set(items) == {"inside", "far"}
    assert not items["far"].get("error") and items["far"]["relpath"] == "linked/far.pt"
    assert not wu.same(wu.gen("<hypernet:far:0.8>a cat"), wu.gen())  # it applies


def test_writing_through_a_link_outside_is_refused(linked):
    client, outside = linked
    response = client.post("/hypernet/v1/convert", json={"name": "far"})
    assert response.status_code == 400, response.text
    assert "outside the hypernetwork folder" in response.json()["detail"]
    assert sorted(os.listdir(outside)) == ["far.pt"]
    assert client.post("/hypernet/v1/convert", json={"name": "inside"}).status_code == 200  # inside: fine


def test_a_target_that_is_a_link_to_outside_is_refused(linked, tmp_path):
    client, outside = linked
    os.symlink(outside / "victim.safetensors", os.path.join(wu.hn_dir(), "inside.safetensors"))
    response = client.post("/hypernet/v1/convert", json={"name": "inside.pt", "overwrite": True})
    assert response.status_code == 400, response.text
    assert not (outside / "victim.safetensors").exists()


def test_library_policy(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "out"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    os.symlink(outside, root / "link")
    library = lib_hypernet.HypernetLibrary(root)
    assert library.is_inside(root / "sub" / "a.pt") and not library.is_inside(root / "link" / "a.pt")
    folder = actions.library_folder(library)
    actions.check_target(root / "sub" / "a.safetensors", overwrite=False, inside=folder)
    with pytest.raises(OutsideFolderError, match="outside the hypernetwork folder"):
        actions.check_target(root / "link" / "a.safetensors", overwrite=True, inside=folder)
    with pytest.raises(lib_hypernet.HypernetFileError):
        actions.library_folder(lib_hypernet.HypernetLibrary(None))
