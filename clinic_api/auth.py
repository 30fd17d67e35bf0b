"""Bearer API keys with scopes: 401 without a valid key, 403 without the scope."""

from __future__ import annotations

from typing import Callable, Optional

from fastapi import Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from clinic.api_keys import ApiClient

_bearer = HTTPBearer(auto_error=False, description="An API key created with `python -m clinic_api.keys create`")


def bearer_key(authorization: Optional[str]) -> Optional[str]:
    scheme, _, key = (authorization or "").partition(" ")
    return key.strip() if scheme.lower() == "bearer" else None


async def authenticate_first(request: Request, call_next):
    """Middleware: an unauthenticated request is refused before anything else is looked at
    (FastAPI would otherwise parse and validate the body first and answer 422)."""
    if request.url.path.startswith("/api/v1/"):
        client = request.app.state.api_keys.authenticate(bearer_key(request.headers.get("authorization")))
        if client is None:
            return JSONResponse({"detail": "a valid API key is required"}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        request.state.api_client = client
    return await call_next(request)


def require_scope(scope: str) -> Callable[..., ApiClient]:
    def dependency(
        request: Request, credentials: HTTPAuthorizationCredentials = Depends(_bearer)
    ) -> ApiClient:
        # Set by authenticate_first; the bearer dependency only documents the scheme in OpenAPI.
        client = getattr(request.state, "api_client", None)
        if client is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "a valid API key is required",
                                headers={"WWW-Authenticate": "Bearer"})
        if scope not in client.scopes:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this key lacks the scope {scope!r}")
        return client

    return dependency
