"""The HTTP API under ``/hypernet/v1/`` (list, info, refresh, convert), behind the webui's ``--api-auth``."""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import Depends, HTTPException
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from modules import shared
from pydantic import BaseModel

import lib_hypernet

from .extension import HypernetExtension, model_facts


class ConvertRequest(BaseModel):
    name: str
    overwrite: bool = False


def add_routes(app: Any, extension: HypernetExtension) -> None:
    """on_app_started: add the routes to the webui's FastAPI ``app``."""
    credentials = {}
    if getattr(shared.cmd_opts, "api_auth", None):
        for pair in shared.cmd_opts.api_auth.strip().split(","):
            user, _, password = pair.strip().partition(":")
            credentials[user] = password
    security = HTTPBasic(auto_error=bool(credentials))

    def auth(given: HTTPBasicCredentials | None = Depends(security)) -> None:
        if not credentials:
            return
        if given is not None and given.username in credentials and secrets.compare_digest(
            given.password, credentials[given.username]
        ):
            return
        raise HTTPException(status_code=401, detail="Incorrect username or password",
                            headers={"WWW-Authenticate": "Basic"})

    def run(fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except lib_hypernet.HypernetNotFoundError as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from exc
        except lib_hypernet.HypernetError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from exc
        finally:
            extension.save_hashes()

    def list_hypernetworks(refresh: bool = False) -> list[dict[str, Any]]:
        if refresh or not extension.library.refreshed:
            extension.refresh()
        return run(extension.service.list, model=model_facts())

    def refresh_hypernetworks() -> dict[str, Any]:
        extension.refresh()
        return {"count": len(extension.library.files), "duplicates": extension.library.duplicates}

    def hypernetwork_info(name: str) -> dict[str, Any]:
        extension.ensure_refreshed()
        return run(extension.service.info, name, model=model_facts())

    def convert_hypernetwork(request: ConvertRequest) -> dict[str, Any]:
        extension.ensure_refreshed()
        result = run(extension.service.convert, request.name, overwrite=request.overwrite)
        extension.refresh()
        return result

    deps = [Depends(auth)]
    app.add_api_route("/hypernet/v1/hypernetworks", list_hypernetworks, methods=["GET"], dependencies=deps)
    app.add_api_route("/hypernet/v1/refresh", refresh_hypernetworks, methods=["POST"], dependencies=deps)
    app.add_api_route("/hypernet/v1/hypernetworks/{name:path}", hypernetwork_info, methods=["GET"], dependencies=deps)
    app.add_api_route("/hypernet/v1/convert", convert_hypernetwork, methods=["POST"], dependencies=deps)
