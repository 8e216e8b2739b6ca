"""Who may call the served graph, and what each caller may see (LangGraph custom auth).

``langgraph.json`` points its ``auth.path`` here. With ``PAHF_API_TOKENS="<token>:<user>,..."``
every request needs ``Authorization: Bearer <token>`` and acts as that token's user: threads,
runs and crons are stamped with their owner and filtered to them (LangGraph's resource
filters), the store API is confined to namespaces that start with the caller's id, assistants
are the deployment's (clients may read, not create or change them), and the graph takes the
run's user from the authenticated identity (``langgraph_auth_user``, see
:func:`pahf.nodes.services.resolve_user`). Without tokens (local development, Studio) every
request is let through as before, and the server logs that it is unauthenticated.

To plug a real identity provider, replace :func:`authenticate` with one that verifies the
provider's token and returns its subject as ``identity`` (docs/deploy.md, "Serving safely");
the ownership handlers below stay as they are.
"""

from __future__ import annotations

import hmac
import logging
import os
from typing import Any

from langgraph_sdk import Auth

from pahf.request import validate_user_id

TOKENS_ENV = "PAHF_API_TOKENS"
#: Shortest token accepted: a short shared secret is guessable.
MIN_TOKEN_CHARS = 16
#: Metadata key stamped on threads, runs and crons, and filtered on.
OWNER_KEY = "owner"
logger = logging.getLogger("pahf.auth")


def parse_tokens(raw: str) -> dict[str, str]:
    """``"<token>:<user>,<token>:<user>"`` -> {token: user}; a malformed entry raises
    ``ValueError`` naming it (never the token itself), so a typo fails the server at start."""
    tokens: dict[str, str] = {}
    for position, entry in enumerate(raw.split(","), start=1):
        entry = entry.strip()
        if not entry:
            continue
        token, sep, user = entry.partition(":")
        token = token.strip()
        if not sep or not user.strip():
            raise ValueError(f"${TOKENS_ENV}: entry {position} is not <token>:<user>")
        if len(token) < MIN_TOKEN_CHARS:
            raise ValueError(
                f"${TOKENS_ENV}: the token of entry {position} is shorter than "
                f"{MIN_TOKEN_CHARS} characters"
            )
        if token in tokens:
            raise ValueError(f"${TOKENS_ENV}: the token of entry {position} is repeated")
        tokens[token] = validate_user_id(user.strip())
    return tokens


TOKENS = parse_tokens(os.environ.get(TOKENS_ENV, ""))
if not TOKENS:
    logger.warning(
        "pahf: %s is not set: this server is UNAUTHENTICATED. Any client can act as any "
        "user and read every thread. Set %s='<token>:<user>,...' before serving beyond "
        "localhost (docs/deploy.md, 'Serving safely').",
        TOKENS_ENV,
        TOKENS_ENV,
    )

auth = Auth()


def _unauthorized(detail: str) -> Auth.exceptions.HTTPException:
    return Auth.exceptions.HTTPException(
        status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


def _forbidden(detail: str) -> Auth.exceptions.HTTPException:
    return Auth.exceptions.HTTPException(status_code=403, detail=detail)


@auth.authenticate
async def authenticate(authorization: str | None) -> Auth.types.MinimalUserDict:
    """The caller's identity from its bearer token (compared in constant time)."""
    if not TOKENS:
        return {"identity": "anonymous", "is_authenticated": False, "permissions": []}
    if not authorization:
        raise _unauthorized("missing Authorization: Bearer <token>")
    scheme, _, presented = authorization.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise _unauthorized("Authorization must be 'Bearer <token>'")
    given = presented.strip().encode()
    found: str | None = None
    for token, user in TOKENS.items():
        if hmac.compare_digest(token.encode(), given):
            found = user
    if found is None:
        raise _unauthorized("unknown token")
    return {"identity": found, "is_authenticated": True, "permissions": []}


def caller_of(ctx: Auth.types.AuthContext) -> str | None:
    """The authenticated caller, whose own resources are all it may reach; None for the
    anonymous user of a server without tokens (everything open, as in local development).
    Anyone else (the Studio user, an unauthenticated user) reaching a server that has
    tokens is refused. An ``authenticate`` that verifies another provider's tokens returns
    authenticated users only, so the same ownership rules apply to it unchanged."""
    user = ctx.user
    studio = isinstance(user, Auth.types.StudioUser)
    if user.is_authenticated and not studio:
        return validate_user_id(str(user.identity))
    if TOKENS:
        raise _forbidden("this server needs a bearer token")
    return None


@auth.on
async def owned_by_caller(ctx: Auth.types.AuthContext, value: Any) -> Auth.types.FilterType | None:
    """Threads, runs, crons: stamp new ones with their owner; show and change only one's own
    (a thread of another user is "not found", as if it did not exist)."""
    caller = caller_of(ctx)
    if caller is None:
        return None
    if isinstance(value, dict):
        metadata = value.get("metadata")
        if not isinstance(metadata, dict):
            metadata = value["metadata"] = {}
        metadata[OWNER_KEY] = caller
    return {OWNER_KEY: caller}


@auth.on.assistants
async def deployment_assistants(ctx: Auth.types.AuthContext, value: Any) -> None:
    """Assistants are the deployment's configuration: readable, not client-made or changed
    (an assistant carries a context every run of it would use)."""
    if caller_of(ctx) is None:
        return None
    if ctx.action not in ("read", "search"):
        raise _forbidden("assistants are managed by the deployment")
    return None


@auth.on.store()
async def own_namespaces(ctx: Auth.types.AuthContext, value: Any) -> None:
    """The store API: a caller's namespaces are those that start with its user id."""
    caller = caller_of(ctx)
    if caller is None:
        return None
    namespace = tuple(value.get("namespace") or ())
    if not namespace and ctx.action in ("search", "list_namespaces"):
        value["namespace"] = (caller,)
        return None
    if not namespace or namespace[0] != caller:
        raise _forbidden("store namespaces must start with your user id")
    return None
