"""The HTTP API under ``/hypernet/v1/`` (list, info, refresh, convert).

Who may call it is decided like the webui decides for its own pages and API:

- with ``--api-auth``, HTTP Basic with one of its ``user:password`` accounts (an entry without a
  password is not an account: it is logged as an error and refused);
- else with ``--gradio-auth``/``--gradio-auth-path`` (the UI's login), the same accounts, by HTTP
  Basic or by the UI's login cookie;
- else anyone who can reach the webui.

The routes that write files (``POST /hypernet/v1/convert``) exist only when the webui's API is on
(``--api``, or ``--nowebui``, which is API-only); the read-only ones always.

No POST route acts for another web site (:func:`cross_site_refusal`): a browser sends any page's form
or simple ``fetch`` POST, with the webui's login cookie, and only its ``Origin`` header tells. So a
POST whose ``Origin`` is neither the webui's own nor allowed by ``--cors-allow-origins`` /
``--cors-allow-origins-regex`` is refused (403), and a POST body must be ``application/json`` (415):
no form or ``text/plain`` body is read as JSON.  Every response is
plain JSON with string keys (:meth:`~lib_hypernet.library.description.FileDescription.to_json`), so it
renders through gradio's ``ORJSONResponse`` (the default response class of the app the webui serves
with the UI running) as well as through FastAPI's own.

Imported when the app starts (not at script load), so the webui's start-up does not pay for it.
"""

from __future__ import annotations

import logging
import re
import secrets
from typing import TYPE_CHECKING, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from modules import shared
from pydantic import BaseModel

import lib_hypernet
from lib_hypernet.errors import HypernetExistsError, HypernetNotFoundError, shorten
from lib_hypernet.ui.origin import same_origin

if TYPE_CHECKING:
    from .extension import HypernetExtension

log = logging.getLogger(__name__)

PREFIX = "/hypernet/v1"
WRITE_ROUTES = (f"{PREFIX}/convert",)


# ---------------------------------------------------------------------------- accounts
def parse_accounts(text: str, option: str) -> dict[str, str]:
    """``user:password,user2:password2`` → accounts; entries without a user or a password are refused (logged)."""
    accounts: dict[str, str] = {}
    for entry in str(text).split(","):
        entry = entry.strip()
        if not entry:
            continue
        user, sep, password = entry.partition(":")
        user = user.strip()
        if not sep or not user or not password:
            log.error("hypernetworks: the %s entry %r has no %s; it is not an account (write user:password)",
                      option, shorten(user or entry, 40), "user name" if sep and not user else "password")
            continue
        accounts[user] = password
    return accounts


def webui_accounts(cmd_opts: Any) -> tuple[dict[str, str] | None, str]:
    """The accounts that may use the routes, and where they come from.

    ``None`` means no login is required; an empty dict means a login was configured but has no valid
    account, so every request is refused.
    """
    api_auth = getattr(cmd_opts, "api_auth", None)
    if api_auth:
        return parse_accounts(api_auth, "--api-auth"), "--api-auth"
    gradio_auth = getattr(cmd_opts, "gradio_auth", None)
    gradio_auth_path = getattr(cmd_opts, "gradio_auth_path", None)
    if not gradio_auth and not gradio_auth_path:
        return None, ""
    accounts = parse_accounts(gradio_auth, "--gradio-auth") if gradio_auth else {}
    if gradio_auth_path:
        try:
            with open(gradio_auth_path, encoding="utf8") as f:
                for line in f:
                    accounts.update(parse_accounts(line.strip(), "--gradio-auth-path"))
        except OSError as exc:
            log.error("hypernetworks: cannot read --gradio-auth-path %s (%s); the HTTP API refuses everyone",
                      gradio_auth_path, exc.strerror or exc)
    return accounts, "--gradio-auth"


def api_enabled(cmd_opts: Any) -> bool:
    """Whether the webui serves its own API (``--api``, or ``--nowebui``, which is API-only)."""
    return bool(getattr(cmd_opts, "api", False) or getattr(cmd_opts, "nowebui", False))


# ---------------------------------------------------------------------------- cross-site requests
def cors_allowed(cmd_opts: Any) -> tuple[list[str], re.Pattern[str] | None]:
    """The origins the webui's own CORS setup allows (A1111 ``setup_middleware``: a comma list and a regex)."""
    origins = [o.strip() for o in str(getattr(cmd_opts, "cors_allow_origins", None) or "").split(",") if o.strip()]
    pattern = getattr(cmd_opts, "cors_allow_origins_regex", None)
    try:
        regex = re.compile(pattern) if pattern else None
    except re.error as exc:
        log.error("hypernetworks: --cors-allow-origins-regex is not a regular expression (%s); it allows nothing", exc)
        regex = None
    return origins, regex


def cross_site_refusal(headers: Any, scheme: str, origins: list[str], regex: re.Pattern[str] | None) -> HTTPException | None:
    """Why a POST with these ``headers`` is refused as possibly sent by another web page, or ``None``."""
    origin = headers.get("origin")
    if origin is not None and not (
        same_origin(origin, headers.get("host") or "", scheme)
        or "*" in origins or origin in origins  # as starlette's CORSMiddleware compares them
        or (regex is not None and regex.fullmatch(origin))
    ):
        return HTTPException(status_code=403, detail=shorten(
            f"refused a request from another web page (Origin {origin}); the webui's --cors-allow-origins "
            "can allow that page", 300))
    has_body = headers.get("content-length", "0") not in ("", "0") or "transfer-encoding" in headers
    content_type = (headers.get("content-type") or "").split(";")[0].strip().lower()
    # No Content-Type is what curl -d without -H and older clients send; browsers send one with every body.
    is_json = content_type == "application/json" or (content_type.startswith("application/") and content_type.endswith("+json"))
    if has_body and content_type and not is_json:
        return HTTPException(status_code=415, detail="send the body as Content-Type: application/json")
    return None


# ---------------------------------------------------------------------------- routes
class ConvertRequest(BaseModel):
    name: str
    overwrite: bool = False


def add_routes(app: Any, extension: HypernetExtension) -> None:
    """on_app_started: add the routes to the webui's FastAPI ``app`` (see the module docstring for who may call)."""
    if app is None or not hasattr(app, "add_api_route"):
        return
    from .extension import model_facts

    cmd_opts = shared.cmd_opts
    accounts, source = webui_accounts(cmd_opts)
    if accounts is not None and not accounts:
        log.error("hypernetworks: %s has no valid account; the HTTP API under %s refuses every request", source, PREFIX)
    origins, origin_regex = cors_allowed(cmd_opts)
    security = HTTPBasic(auto_error=False)
    tokens = getattr(app, "tokens", None) if source == "--gradio-auth" else None  # gradio's login sessions

    def auth(request: Request, given: HTTPBasicCredentials | None = Depends(security)) -> None:
        if accounts is None:
            return
        if given is not None and given.username in accounts and secrets.compare_digest(
            given.password.encode("utf-8"), accounts[given.username].encode("utf-8")
        ):
            return
        if isinstance(tokens, dict):
            token = request.cookies.get("access-token") or request.cookies.get("access-token-unsecure")
            if token and tokens.get(token) in accounts:
                return
        raise HTTPException(status_code=401, detail="Incorrect username or password",
                            headers={"WWW-Authenticate": "Basic"})

    def same_site(request: Request) -> None:
        refusal = cross_site_refusal(request.headers, request.url.scheme, origins, origin_regex)
        if refusal is not None:
            log.warning("hypernetworks: %s %s refused: %s", request.method, request.url.path, refusal.detail)
            raise refusal

    def run(fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except HypernetNotFoundError as exc:
            raise HTTPException(status_code=404, detail=shorten(str(exc), 2000)) from exc
        except HypernetExistsError as exc:
            detail = f"{shorten(str(exc), 2000)}; pass \"overwrite\": true to replace it"
            raise HTTPException(status_code=409, detail=detail) from exc
        except lib_hypernet.HypernetError as exc:
            raise HTTPException(status_code=400, detail=shorten(str(exc), 2000)) from exc
        except HTTPException:
            raise
        except Exception as exc:
            log.exception("hypernetworks: %s failed", getattr(fn, "__name__", "a route"))
            raise HTTPException(status_code=500, detail=shorten(f"{type(exc).__name__}: {exc}", 500)
                                + " (see the webui console)") from exc
        finally:
            extension.caches.save()

    def each_file() -> list[dict[str, Any]]:
        """The listing built file by file, each failure an entry of its own (when the whole listing failed)."""
        items = []
        for file in list(extension.library.files.values()):
            try:
                items.append(extension.library.summary(file))
            except Exception as exc:
                log.warning("hypernetworks: cannot describe %s", file.path, exc_info=True)
                items.append({"name": file.name, "path": file.path, "relpath": file.relpath, "format": file.format,
                              "size": file.size, "error": shorten(f"{type(exc).__name__}: {exc}", 500)})
        return items

    def list_hypernetworks(refresh: bool = False) -> Any:
        if refresh or not extension.library.refreshed:
            extension.refresh()
        try:
            return run(extension.service.list, model=model_facts())
        except HTTPException as exc:
            if exc.status_code != 500:
                raise
            return run(each_file)

    def refresh_hypernetworks() -> Any:
        extension.refresh()
        return run(lambda: {"count": len(extension.library.files), "duplicates": extension.library.duplicates})

    def hypernetwork_info(name: str) -> Any:
        extension.ensure_refreshed()
        return run(extension.service.info, name, model=model_facts())

    def convert_hypernetwork(request: ConvertRequest) -> Any:
        extension.ensure_refreshed()
        try:
            return run(extension.service.convert, request.name, overwrite=request.overwrite)
        finally:
            extension.refresh()

    deps = [Depends(auth)]
    post_deps = [Depends(same_site), *deps]  # refused as cross-site before any login is looked at
    app.add_api_route(f"{PREFIX}/hypernetworks", list_hypernetworks, methods=["GET"], dependencies=deps)
    app.add_api_route(f"{PREFIX}/refresh", refresh_hypernetworks, methods=["POST"], dependencies=post_deps)
    app.add_api_route(f"{PREFIX}/hypernetworks/{{name:path}}", hypernetwork_info, methods=["GET"], dependencies=deps)
    if api_enabled(cmd_opts):
        app.add_api_route(f"{PREFIX}/convert", convert_hypernetwork, methods=["POST"], dependencies=post_deps)
    else:
        log.info("hypernetworks: POST %s/convert is off: it writes files, so it needs the webui's --api", PREFIX)
