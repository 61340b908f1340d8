"""The HTTP routes as the real webui serves them: who may call them (like the webui decides), which exist
when (writing ones only with the webui's API), plain JSON through gradio's ORJSONResponse, bounded echoes."""

from __future__ import annotations

import logging
import os

import pytest
import webui_util as wu
from fastapi.testclient import TestClient
from gradio.routes import ORJSONResponse

READ_ROUTES = [("get", "/hypernet/v1/hypernetworks"), ("get", "/hypernet/v1/hypernetworks/x"),
               ("get", "/hypernet/v1/hypernetworks?refresh=true"), ("post", "/hypernet/v1/refresh")]


@pytest.fixture
def booted(tmp_path):
    """``booted(args=[...], nowebui=False)`` → a TestClient on the app the extension was given."""
    started = []

    def boot(**kwargs):
        wu.reset(tmp_path)
        wu.write_hn("x", seed=1)
        wu.write_hn("hn_b", seed=2)
        started.append(True)
        return TestClient(wu.start(**kwargs))

    yield boot
    if started:
        wu.webui.unload()


def _call(client, method, path, **kwargs):
    if method == "post" and path.endswith("/convert"):
        kwargs.setdefault("json", {"name": "x"})
    return getattr(client, method)(path, **kwargs)


def test_ui_app_renders_with_orjson_and_every_route_answers(booted):
    client = booted(args=["--api"])
    assert client.app.router.default_response_class is ORJSONResponse  # the stand-in's app is gradio's
    for method, path in READ_ROUTES:
        response = _call(client, method, path)
        assert response.status_code == 200, (path, response.text)
    info = client.get("/hypernet/v1/hypernetworks/x").json()
    assert info["module_widths"] and all(isinstance(k, str) for k in info["module_widths"])
    assert set(info["module_widths"]) == {str(w) for w in wu.SD1_TINY_WIDTHS}
    response = client.post("/hypernet/v1/convert", json={"name": "x"})
    assert response.status_code == 200, response.text
    assert response.json()["format"] == "safetensors"


def test_convert_twice_says_the_target_exists(booted):
    client = booted(args=["--api"])
    assert client.post("/hypernet/v1/convert", json={"name": "hn_b"}).status_code == 200
    target = os.path.join(wu.hn_dir(), "hn_b.safetensors")
    before = os.stat(target).st_mtime_ns
    response = client.post("/hypernet/v1/convert", json={"name": "hn_b"})  # "hn_b" is now the .safetensors
    assert response.status_code == 409, response.text  # the typed HypernetExistsError, said the HTTP API's way
    assert response.json()["detail"] == f"{target}: already exists; pass \"overwrite\": true to replace it"
    assert os.stat(target).st_mtime_ns == before
    assert client.post("/hypernet/v1/convert", json={"name": "hn_b", "overwrite": True}).status_code == 200


def test_convert_onto_a_directory_is_400(booted):
    client = booted(nowebui=True)
    os.makedirs(os.path.join(wu.hn_dir(), "x.safetensors"))
    response = client.post("/hypernet/v1/convert", json={"name": "x", "overwrite": True})
    assert response.status_code == 400, response.text
    assert "directory" in response.json()["detail"]
    assert os.path.isdir(os.path.join(wu.hn_dir(), "x.safetensors"))


@pytest.mark.parametrize("mode", ["ui", "ui+api", "nowebui"])
def test_convert_exists_only_with_the_webui_api(booted, mode):
    client = booted(args=["--api"] if mode == "ui+api" else [], nowebui=mode == "nowebui")
    response = client.post("/hypernet/v1/convert", json={"name": "x"})
    written = os.path.exists(os.path.join(wu.hn_dir(), "x.safetensors"))
    if mode == "ui":
        assert response.status_code in (404, 405) and not written
    else:
        assert response.status_code == 200 and written
    assert client.get("/hypernet/v1/hypernetworks").status_code == 200  # reading is always there


def test_api_auth_refuses_entries_without_password(booted, caplog):
    with caplog.at_level(logging.ERROR, logger="lib_hypernet.webui.routes"):
        client = booted(args=["--api", "--api-auth", "user:pass,nopw,other:se:cret, :x"])
    assert any("nopw" in r.getMessage() and "not an account" in r.getMessage() for r in caplog.records)
    assert not any("pass" in r.getMessage().split("entry")[0] for r in caplog.records)  # no password is logged
    for method, path in [*READ_ROUTES, ("post", "/hypernet/v1/convert")]:
        assert _call(client, method, path).status_code == 401, path
        assert _call(client, method, path, auth=("nopw", "")).status_code == 401, path
        assert _call(client, method, path, auth=("", "x")).status_code == 401, path
        assert _call(client, method, path, auth=("user", "wrong")).status_code == 401, path
    assert not os.path.exists(os.path.join(wu.hn_dir(), "x.safetensors"))
    for method, path in READ_ROUTES:
        assert _call(client, method, path, auth=("user", "pass")).status_code == 200, path
        assert _call(client, method, path, auth=("other", "se:cret")).status_code == 200, path
    assert _call(client, "post", "/hypernet/v1/convert", auth=("user", "pass")).status_code == 200


def test_api_auth_without_any_valid_account_refuses_everyone(booted):
    client = booted(args=["--api", "--api-auth", "nopw"])
    for method, path in [*READ_ROUTES, ("post", "/hypernet/v1/convert")]:
        assert _call(client, method, path).status_code == 401, path
        assert _call(client, method, path, auth=("nopw", "")).status_code == 401, path
    assert not os.path.exists(os.path.join(wu.hn_dir(), "x.safetensors"))


@pytest.mark.parametrize("how", ["option", "file"])
def test_gradio_auth_alone_guards_every_route(booted, tmp_path, how):
    if how == "option":
        args = ["--api", "--gradio-auth", "alice:wonder,bob"]
    else:
        creds = tmp_path / "creds.txt"
        creds.write_text("alice:wonder\nbob\n", encoding="utf8")
        args = ["--api", "--gradio-auth-path", str(creds)]
    client = booted(args=args)
    for method, path in [*READ_ROUTES, ("post", "/hypernet/v1/convert")]:
        assert _call(client, method, path).status_code == 401, path
        assert _call(client, method, path, auth=("bob", "")).status_code == 401, path
    assert not os.path.exists(os.path.join(wu.hn_dir(), "x.safetensors"))
    for method, path in READ_ROUTES:
        assert _call(client, method, path, auth=("alice", "wonder")).status_code == 200, path
    # the UI's login session (gradio's access-token cookie) is accepted like the password
    client.app.tokens["tok123"] = "alice"
    client.cookies.set("access-token-unsecure", "tok123")
    assert client.get("/hypernet/v1/hypernetworks").status_code == 200
    client.cookies.set("access-token-unsecure", "forged")
    assert client.get("/hypernet/v1/hypernetworks").status_code == 401


def test_api_auth_wins_over_gradio_auth(booted):
    client = booted(args=["--api", "--api-auth", "api:key", "--gradio-auth", "ui:pw"])
    assert client.get("/hypernet/v1/hypernetworks", auth=("ui", "pw")).status_code == 401
    assert client.get("/hypernet/v1/hypernetworks", auth=("api", "key")).status_code == 200


def test_huge_names_are_cut_short(booted):
    client = booted(args=["--api"])
    for length, response in ((60_000, client.get("/hypernet/v1/hypernetworks/" + "y" * 60_000)),  # URL limit
                             (2_000_000, client.post("/hypernet/v1/convert", json={"name": "y" * 2_000_000}))):
        assert response.status_code == 404
        detail = response.json()["detail"]
        assert "too long" in detail and len(detail) < 600 and f"{length} characters" in detail
    # a long name under the cap still gets a short echo
    response = client.get("/hypernet/v1/hypernetworks/" + "x" * 1000)
    assert response.status_code == 404 and len(response.json()["detail"]) < 600


# ---------------------------------------------------------------------------- cross-site requests (issue 15 item 7)
def _converted() -> bool:
    return os.path.exists(os.path.join(wu.hn_dir(), "x.safetensors"))


@pytest.mark.parametrize("content_type", ["text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=b"])
def test_a_simple_cross_site_post_converts_nothing(booted, content_type):
    """What a form or a fetch without preflight sends: a JSON text under a content type that needs no preflight."""
    client = booted(args=["--api"])
    body = b'{"name": "x", "overwrite": true}'
    for origin in ({}, {"Origin": "http://evil.example"}):
        response = client.post("/hypernet/v1/convert", content=body, headers={"Content-Type": content_type, **origin})
        assert response.status_code in (403, 415), response.text
        assert not _converted()
    response = client.post("/hypernet/v1/convert", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 415 and "application/json" in response.json()["detail"]


def test_a_cross_site_post_without_content_type_converts_nothing(booted):
    """``fetch(url, {method: "POST", body: new Blob([json])})`` sends no Content-Type (no preflight either), and
    FastAPI reads such a body as JSON: only the Origin tells it from curl."""
    client = booted(args=["--api"])
    request = client.build_request("POST", "/hypernet/v1/convert", content=b'{"name": "x"}',
                                   headers={"Origin": "http://evil.example"})
    assert "content-type" not in request.headers
    assert client.send(request).status_code == 403 and not _converted()
    del request.headers["origin"]
    assert client.send(request).status_code == 200 and _converted()  # curl -d without -H: unchanged


@pytest.mark.parametrize("path", ["/hypernet/v1/convert", "/hypernet/v1/refresh"])
def test_a_post_from_another_origin_is_refused(booted, path, caplog):
    client = booted(args=["--api"])
    with caplog.at_level(logging.WARNING, logger="lib_hypernet.webui.routes"):
        for origin in ("http://evil.example", "null", "http://testserver.evil.example", "https://testserver"):
            response = _call(client, "post", path, headers={"Origin": origin})
            assert response.status_code == 403, (origin, response.text)
            assert "another web page" in response.json()["detail"]
    assert not _converted()
    assert any("evil.example" in r.getMessage() for r in caplog.records)
    # the webui's own page (Origin = the Host it was reached by) and clients that send no Origin
    assert _call(client, "post", path, headers={"Origin": "http://testserver"}).status_code == 200
    assert _call(client, "post", "/hypernet/v1/refresh").status_code == 200


def test_cors_allow_origins_are_honoured(booted):
    client = booted(args=["--api", "--cors-allow-origins", "http://app.example,http://other.example:8080",
                          "--cors-allow-origins-regex", r"https://.*\.tools\.example"])
    for origin in ("http://evil.example", "http://app.example:8080", "https://tools.example.evil.example"):
        assert _call(client, "post", "/hypernet/v1/convert", headers={"Origin": origin}).status_code == 403, origin
    assert not _converted()
    for origin in ("http://other.example:8080", "https://a.tools.example"):
        assert _call(client, "post", "/hypernet/v1/refresh", headers={"Origin": origin}).status_code == 200, origin
    assert _call(client, "post", "/hypernet/v1/convert", headers={"Origin": "http://app.example"}).status_code == 200
    assert _converted()


def test_the_origin_check_comes_before_the_login(booted):
    """A foreign page gets 403 even with the user's login (the UI's cookie is sent along cross-site)."""
    client = booted(args=["--api", "--gradio-auth", "alice:wonder"])
    client.app.tokens["tok123"] = "alice"
    client.cookies.set("access-token", "tok123")
    assert _call(client, "post", "/hypernet/v1/convert", headers={"Origin": "http://evil.example"}).status_code == 403
    assert not _converted()
    assert _call(client, "post", "/hypernet/v1/convert").status_code == 200  # JSON without Origin: unchanged
