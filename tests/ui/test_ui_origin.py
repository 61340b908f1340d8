"""The standalone panel answers its own page only (issue 15 item 7): another web page open in the user's
browser, or a DNS-rebound name, cannot run Create / Convert / Repair; ``--auth`` turns on a login.

The middleware is checked as plain ASGI (an http and a websocket scope), then the real page is served
in-process on 127.0.0.1 and driven like a browser would: a Create through gradio's queue (WebSocket on
gradio 3.41, POST + server-sent events on gradio 4) with a foreign ``Origin`` writes nothing.

On gradio 4.40 (Forge 2), with the venv ``tools/check_panel_gradio4.py`` describes (/tmp/g4)::

    HYPERNET_GRADIO_4_CHECK=1 /tmp/g4/bin/python -c "import sys; sys.path.append('.venv/lib/python3.11/site-packages'); \
        import pytest; sys.exit(pytest.main(['tests/test_ui_origin.py', '-q']))"
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from lib_hypernet.ui import compat
from lib_hypernet.ui.__main__ import AUTH_ENV, parse_args
from lib_hypernet.ui.origin import SameOriginGuard, same_origin, split_authority, split_origin
from lib_hypernet.ui.standalone import build_app, make_source, serve

EVIL = "http://evil.example"


# --------------------------------------------------------------------------- ASGI unit
class Inner:
    """The wrapped app: records whether a request got through."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        self.calls.append(scope["type"])
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
        else:
            await receive()
            await send({"type": "websocket.accept"})


def _asgi(scope_type: str, headers: dict[str, str] | list[tuple[str, str]], *, hosts: tuple[str, ...] = (),
          server: tuple[str, int] = ("127.0.0.1", 7860), app: Any = None) -> tuple[list[dict], list[str]]:
    """Run one request through the guard; returns (messages sent, what reached the inner app)."""
    inner = Inner()
    guard = SameOriginGuard(inner, hosts=hosts)
    pairs = headers.items() if isinstance(headers, dict) else headers
    scope = {"type": scope_type, "scheme": "http" if scope_type == "http" else "ws", "path": "/queue/join",
             "server": server, "headers": [(k.lower().encode(), v.encode()) for k, v in pairs]}
    if scope_type == "http":
        scope["method"] = "POST"
    if app is not None:
        scope["app"] = app
    incoming = [{"type": "http.request", "body": b"{}"} if scope_type == "http" else {"type": "websocket.connect"}]
    sent: list[dict] = []

    async def receive() -> dict:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    # A loop of its own, never made current: asyncio.run() would leave the main thread without one, and
    # gradio 4's queue, built later in this thread, then gets no lock (TypeError on its first event).
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(guard(scope, receive, send))
    finally:
        loop.close()
    return sent, inner.calls


def _outcome(scope_type: str, headers: Any, **kwargs: Any) -> str:
    sent, calls = _asgi(scope_type, headers, **kwargs)
    if calls:
        return "passed"
    kinds = {m["type"]: m for m in sent}
    if scope_type == "http":
        assert kinds["http.response.start"]["status"] == 403
    else:  # closed before accepted: the server answers the handshake with HTTP 403
        assert list(kinds) == ["websocket.close"] and kinds["websocket.close"]["code"] == 1008
    return "refused"


@pytest.mark.parametrize("scope_type", ["http", "websocket"])
@pytest.mark.parametrize(("headers", "expected"), [
    ({"host": "127.0.0.1:7860"}, "passed"),                                    # curl, the CLI, gradio's own calls
    ({"host": "127.0.0.1:7860", "origin": "http://127.0.0.1:7860"}, "passed"),  # the page itself
    ({"host": "localhost:7860", "origin": "http://localhost:7860"}, "passed"),
    ({"host": "[::1]:7860", "origin": "http://[::1]:7860"}, "passed"),
    ({"host": "LocalHost:8000", "origin": "http://localhost:8000"}, "passed"),  # ssh -L 8000:localhost:7860
    ({"host": "127.0.0.1:7860", "origin": EVIL}, "refused"),                    # another web site
    ({"host": "127.0.0.1:7860", "origin": "null"}, "refused"),                  # sandboxed frame, file:// page
    ({"host": "127.0.0.1:7860", "origin": "http://localhost:7860"}, "refused"),  # another origin, same machine
    ({"host": "127.0.0.1:7860", "origin": "http://127.0.0.1:8080"}, "refused"),  # another local web app
    ({"host": "127.0.0.1:7860", "origin": "https://127.0.0.1:7860"}, "refused"),
    ({"host": "127.0.0.1:7860", "origin": "http://127.0.0.1:7860/x"}, "refused"),
    ({"host": "evil.example:7860"}, "refused"),                                 # DNS rebinding
    ({"host": "evil.example:7860", "origin": "http://evil.example:7860"}, "refused"),
    ({"host": "127.0.0.1.evil.example"}, "refused"),
    ({"host": "evil@127.0.0.1:7860"}, "refused"),
    ({"host": "127.0.0.1:notaport"}, "refused"),
    ({}, "refused"),                                                            # no Host at all
    ([("host", "127.0.0.1:7860"), ("host", "evil.example")], "refused"),        # sent twice
    ([("host", "127.0.0.1:7860"), ("origin", "http://127.0.0.1:7860"), ("origin", EVIL)], "refused"),
])
def test_guard_refuses_other_origins_and_hosts(scope_type: str, headers: Any, expected: str) -> None:
    assert _outcome(scope_type, headers) == expected


@pytest.mark.parametrize("scope_type", ["http", "websocket"])
def test_guard_allows_the_host_passed_and_the_address_connected_to(scope_type: str) -> None:
    own = {"host": "mybox.lan:7860", "origin": "http://mybox.lan:7860"}
    assert _outcome(scope_type, own) == "refused"
    assert _outcome(scope_type, own, hosts=("MyBox.lan",)) == "passed"
    # --host 0.0.0.0 reached from another machine by the address of the interface (never by a name)
    lan = {"host": "192.168.1.5:7860", "origin": "http://192.168.1.5:7860"}
    assert _outcome(scope_type, lan, hosts=("0.0.0.0",), server=("192.168.1.5", 7860)) == "passed"
    assert _outcome(scope_type, lan, hosts=("0.0.0.0",), server=("10.0.0.2", 7860)) == "refused"
    assert _outcome(scope_type, {"host": "0.0.0.0:7860"}, hosts=("0.0.0.0",)) == "refused"


def test_guard_checks_the_websocket_login_gradio_3_does_not() -> None:
    app = SimpleNamespace(auth={"u": "p"}, tokens={"good-token": "u"})  # what gradio's App holds
    host = {"host": "127.0.0.1:7860", "origin": "http://127.0.0.1:7860"}
    assert _outcome("websocket", host, app=app) == "refused"
    assert _outcome("websocket", {**host, "cookie": "access-token=forged"}, app=app) == "refused"
    assert _outcome("websocket", {**host, "cookie": "a=1; access-token-unsecure=good-token"}, app=app) == "passed"
    assert _outcome("http", host, app=app) == "passed"  # gradio checks its HTTP routes itself


def test_origin_parsing() -> None:
    assert split_authority("Example.COM", "https") == ("example.com", 443)
    assert split_authority("[::1]:99", "ws") == ("::1", 99)
    assert split_origin("http://localhost") == ("http", "localhost", 80)
    assert split_origin("null") is None and split_origin("ftp://x") is None
    assert same_origin("http://localhost", "localhost:80", "ws")
    assert not same_origin("http://localhost", "localhost:80", "wss")


# --------------------------------------------------------------------------- the command line
def test_auth_option(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(AUTH_ENV, raising=False)
    assert parse_args([]).auth is None
    assert parse_args(["--auth", "me:se:cret"]).auth == ("me", "se:cret")
    for bad in ("me", "me:", ":secret-value"):
        with pytest.raises(SystemExit):
            parse_args(["--auth", bad])
    assert "USER:PASSWORD" in capsys.readouterr().err.split("\n")[-2]
    with pytest.raises(SystemExit):
        parse_args(["--auth", " :secret-value"])
    assert "secret-value" not in capsys.readouterr().err  # a password is never echoed
    monkeypatch.setenv(AUTH_ENV, "env:pw")
    assert parse_args([]).auth == ("env", "pw")
    assert parse_args(["--auth", "me:x"]).auth == ("me", "x")


def test_main_serves_behind_the_guard_with_the_login(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from lib_hypernet.ui import __main__ as cli
    from lib_hypernet.ui import standalone

    seen: dict[str, Any] = {}

    def fake_serve(app: Any, **kwargs: Any) -> tuple[None, str, None]:
        seen.update(kwargs)
        return None, "http://mybox:7860/", None

    def ctrl_c(seconds: float) -> None:
        raise KeyboardInterrupt  # once served, main waits for Ctrl+C: it returns 0

    monkeypatch.setattr(standalone, "serve", fake_serve)  # main imports it from there when it runs
    monkeypatch.setattr(cli.time, "sleep", ctrl_c)
    monkeypatch.setattr(cli, "port_problem", lambda host, port: None)
    assert cli.main(["--dir", str(tmp_path), "--no-browser", "--auth", "u:p", "--host", "mybox"]) == 0
    assert seen == {"host": "mybox", "port": None, "auth": ("u", "p"), "inbrowser": False,
                    "prevent_thread_lock": True, "quiet": True}


# --------------------------------------------------------------------------- the real page
@pytest.fixture
def launched(tmp_path: Path):
    """``launched(auth=None)`` → (base URL, folder) of the panel served by :func:`serve` on 127.0.0.1."""
    apps = []

    def launch(auth: tuple[str, str] | None = None) -> tuple[str, Path]:
        folder = tmp_path / "hypernetworks"
        folder.mkdir(exist_ok=True)
        app = build_app(make_source(folder, None))
        apps.append(app)
        _, url, _ = serve(app, host="127.0.0.1", auth=auth, prevent_thread_lock=True, quiet=True)
        return url.rstrip("/"), folder

    yield launch
    for app in apps:
        app.close()


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # a proxy from the environment must not carry requests to 127.0.0.1
    return session


def _create_call(session: requests.Session, base: str, name: str) -> tuple[int, list[Any]]:
    """fn_index and inputs of the panel's Create button, from the page's config (all defaults, the name set)."""
    config = session.get(f"{base}/config").json()
    components = {c["id"]: c for c in config["components"]}
    elem = {c["props"].get("elem_id"): c["id"] for c in config["components"]}
    for index, dep in enumerate(config["dependencies"]):
        targets = [t[0] if isinstance(t, list) else t for t in dep["targets"]]
        if elem["hypernet_lib_create"] in targets:
            data = [components[i]["props"].get("value") for i in dep["inputs"]]
            data[dep["inputs"].index(elem["hypernet_lib_new_name"])] = name
            data[dep["inputs"].index(elem["hypernet_lib_new_sizes"])] = ["768"]
            return dep.get("id", index), data
    raise AssertionError("no Create event in the page's config")


def _queue_create(base: str, name: str, *, origin: str | None, session: requests.Session | None = None,
                  config_from: requests.Session | None = None) -> str:
    """Run Create through gradio's queue as the page's script does, sending ``origin``; "done" or why not.

    ``config_from``: the session that reads the page's config (default: ``session``).
    """
    session = session or _session()
    fn_index, data = _create_call(config_from or session, base, name)
    session_hash = uuid.uuid4().hex[:11]
    headers = {"Origin": origin} if origin else {}
    if compat.GRADIO_MAJOR < 4:
        cookie = "; ".join(f"{k}={v}" for k, v in session.cookies.items())
        if cookie:
            headers["Cookie"] = cookie
        try:
            with connect(f"ws{base[4:]}/queue/join", additional_headers=headers, open_timeout=30) as ws:
                while True:
                    msg = json.loads(ws.recv(timeout=60))
                    if msg["msg"] == "send_hash":
                        ws.send(json.dumps({"fn_index": fn_index, "session_hash": session_hash}))
                    elif msg["msg"] == "send_data":
                        ws.send(json.dumps({"fn_index": fn_index, "session_hash": session_hash, "data": data,
                                            "event_data": None}))
                    elif msg["msg"] == "process_completed":
                        return "done" if msg.get("success") else f"failed: {msg}"
        except InvalidStatus as exc:
            return f"refused {exc.response.status_code}"
    joined = session.post(f"{base}/queue/join", headers=headers, timeout=30,
                          json={"fn_index": fn_index, "data": data, "session_hash": session_hash, "event_data": None})
    if joined.status_code != 200:
        return f"refused {joined.status_code}"
    with session.get(f"{base}/queue/data", params={"session_hash": session_hash}, headers=headers, stream=True,
                     timeout=60) as stream:
        if stream.status_code != 200:
            return f"refused {stream.status_code}"
        for line in stream.iter_lines():
            if line.startswith(b"data:"):
                msg = json.loads(line[5:])
                if msg.get("msg") == "process_completed":
                    return "done" if msg.get("success") else f"failed: {msg}"
    return "no result"


def test_a_foreign_page_cannot_create_files(launched, caplog: pytest.LogCaptureFixture) -> None:
    base, folder = launched()
    with caplog.at_level(logging.WARNING, logger="lib_hypernet.ui.origin"):
        assert _queue_create(base, "evil", origin=EVIL) == "refused 403"
    assert not list(folder.iterdir())
    assert any("evil.example" in r.getMessage() and "another web page" in r.getMessage() for r in caplog.records)
    session = _session()
    assert session.post(f"{base}/run/predict", json={"fn_index": 0, "data": []}, headers={"Origin": EVIL}).status_code == 403
    assert session.get(f"{base}/config", headers={"Origin": EVIL}).status_code == 403
    # DNS rebinding: the attacker's own name, pointed at 127.0.0.1
    assert session.get(f"{base}/config", headers={"Host": "evil.example:" + base.rsplit(":", 1)[1]}).status_code == 403
    # the page itself (its Origin) and clients without one (scripts, curl) still work
    assert _queue_create(base, "mine", origin=base) == "done"
    assert _queue_create(base, "scripted", origin=None) == "done"
    assert sorted(p.name for p in folder.iterdir()) == ["mine.pt", "scripted.pt"]


def test_auth_turns_on_the_login(launched) -> None:
    base, folder = launched(auth=("user", "pass"))
    anonymous = _session()
    assert anonymous.get(f"{base}/config").status_code == 401
    assert anonymous.post(f"{base}/run/predict", json={"fn_index": 0, "data": []}).status_code == 401
    if compat.GRADIO_MAJOR < 4:  # /config is needed to find the event: take it from a logged-in session
        logged = _session()
        assert logged.post(f"{base}/login", data={"username": "user", "password": "pass"}).status_code == 200
        assert _queue_create(base, "anon", origin=base, config_from=logged) == "refused 403"
        forged = _session()  # gradio 3.41 opens its queue for any cookie value (and refuses later, at the call)
        forged.cookies.update({name: "forged" for name in logged.cookies.get_dict()})
        assert _queue_create(base, "forged", origin=base, session=forged, config_from=logged) == "refused 403"
    else:
        assert anonymous.post(f"{base}/queue/join", json={"data": [], "session_hash": "x"}).status_code == 401
    assert not list(folder.iterdir())
    assert anonymous.post(f"{base}/login", data={"username": "user", "password": "wrong"}).status_code == 400
    session = _session()
    assert session.post(f"{base}/login", data={"username": "user", "password": "pass"}).status_code == 200
    assert session.get(f"{base}/config").status_code == 200
    assert _queue_create(base, "logged in", origin=base, session=session) == "done"
    assert _queue_create(base, "evil", origin=EVIL, session=session) == "refused 403"
    assert [p.name for p in folder.iterdir()] == ["logged in.pt"]
