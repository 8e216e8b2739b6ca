"""Resolve a run's reasoner and memory: from the caller (in-process) or the deployment (served).

Two trust levels. An in-process caller owns the process, so ``build_graph`` lets each run's
context pick any store (``memory_location``), reasoner and model. A served graph (the one
``langgraph.json`` points at) answers HTTP clients, who must not turn the server into a file
system, network or LLM-billing primitive: there the deployment's settings decide
(:class:`DeploymentSettings`, read from the environment or ``langgraph.json`` ``env``), and a
client may only name what the operator allowlisted (a named store, a named model).

Stores and reasoners are expensive to open (a Chroma client, the embedding model), so they are
cached, but in bounded LRU caches that close what they drop: every open store holds file
descriptors, and an unbounded cache let a stream of distinct locations exhaust them.
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar, cast

from pahf.context import RunContext
from pahf.memory.base import PreferenceMemory
from pahf.memory.chroma import ChromaPreferenceMemory, parse_location
from pahf.nodes.services import Services
from pahf.reasoners.base import Reasoner
from pahf.reasoners.offline import OfflineReasoner

DEFAULT_MEMORY_LOCATION = ".pahf/memory"
#: Stores kept open at once (each holds a handful of descriptors: SQLite, index files).
DEFAULT_MAX_OPEN_STORES = 8
#: Reasoners kept at once (an LLM reasoner holds an HTTP client).
DEFAULT_MAX_REASONERS = 8
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
ReasonerKind = Literal["offline", "llm"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def default_memory_location() -> str:
    """``$PAHF_MEMORY`` or ``./.pahf/memory``."""
    return os.environ.get("PAHF_MEMORY") or DEFAULT_MEMORY_LOCATION


class ClientChoiceError(ValueError):
    """A client of a served graph chose something only the deployment may choose."""


def close_quietly(value: object) -> None:
    """Close ``value`` if it can be closed (stores, reasoners holding HTTP clients)."""
    close = getattr(value, "close", None)
    if callable(close):
        close()


class LRUCache(Generic[K, V]):
    """A thread-safe map of at most ``capacity`` opened things; the least recently used one is
    closed when a new one would exceed it, so descriptors and memory stay bounded whatever
    sequence of keys arrives."""

    def __init__(
        self, capacity: int, close: Callable[[K, V], None] | None = None
    ) -> None:
        if capacity < 1:
            raise ValueError(f"cache capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._close = close or (lambda _key, value: close_quietly(value))
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.RLock()

    def get(self, key: K, open_: Callable[[], V]) -> V:
        """The cached value for ``key``, opening it (once, under the lock) when absent."""
        evicted: list[tuple[K, V]] = []
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            value = open_()
            self._items[key] = value
            while len(self._items) > self.capacity:
                evicted.append(self._items.popitem(last=False))
            for old_key, old in evicted:
                self._close(old_key, old)
            return value

    def pop_where(self, predicate: Callable[[K], bool]) -> None:
        """Drop (and close) every entry whose key matches ``predicate``."""
        with self._lock:
            for key in [k for k in self._items if predicate(k)]:
                self._close(key, self._items.pop(key))

    def close(self) -> None:
        """Close everything held."""
        self.pop_where(lambda _key: True)

    def __len__(self) -> int:
        return len(self._items)

    def keys(self) -> list[K]:
        with self._lock:
            return list(self._items)


def _env_int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"${name} must be a positive integer, got {raw!r}")
    return int(raw)


def _names(environ: Mapping[str, str], name: str) -> list[str]:
    return [part.strip() for part in environ.get(name, "").split(",") if part.strip()]


def _check_name(variable: str, name: str) -> str:
    if not _NAME_RE.match(name):
        raise ValueError(
            f"${variable}: {name!r} is not a usable name (letters, digits, '_', '.', '-'; "
            "at most 64 characters)"
        )
    return name


def _check_location(variable: str, location: str) -> str:
    try:
        parse_location(location)
    except ValueError as exc:
        raise ValueError(f"${variable}: {exc}") from None
    return location


@dataclass(frozen=True)
class DeploymentSettings:
    """What the operator of a served graph decides, not its clients.

    ``memory_location``, ``reasoner`` and ``model`` are the defaults of every run; ``stores``
    (name -> location) and ``models`` are the only other values a client's context may name.
    """

    memory_location: str = DEFAULT_MEMORY_LOCATION
    reasoner: ReasonerKind = "offline"
    model: str | None = None
    stores: Mapping[str, str] = field(default_factory=dict)
    models: frozenset[str] = frozenset()
    max_open_stores: int = DEFAULT_MAX_OPEN_STORES
    max_reasoners: int = DEFAULT_MAX_REASONERS

    def __post_init__(self) -> None:
        for location in (self.memory_location, *self.stores.values()):
            parse_location(location)  # a bad operator setting fails at start, not per run
        if self.max_open_stores < len(self.stores) + 1:
            # every allowed store fits: a served graph never closes a store a run still uses
            object.__setattr__(self, "max_open_stores", len(self.stores) + 1)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DeploymentSettings:
        """Read the settings from the environment (``langgraph.json`` ``env`` sets it too).

        ``PAHF_MEMORY`` (the store), ``PAHF_REASONER`` (offline|llm), ``PAHF_MODEL``,
        ``PAHF_STORES`` (``name=location,name=location``: stores a client may name),
        ``PAHF_MODELS`` (``name,name``: models a client may name), ``PAHF_MAX_OPEN_STORES``,
        ``PAHF_MAX_REASONERS``. A malformed value raises ``ValueError`` naming the variable.
        """
        env = os.environ if environ is None else environ
        reasoner = env.get("PAHF_REASONER", "").strip() or "offline"
        if reasoner not in ("offline", "llm"):
            raise ValueError(f"$PAHF_REASONER must be offline or llm, got {reasoner!r}")
        stores: dict[str, str] = {}
        for entry in _names(env, "PAHF_STORES"):
            name, sep, location = entry.partition("=")
            if not sep or not location.strip():
                raise ValueError(f"$PAHF_STORES: {entry!r} is not name=location")
            stores[_check_name("PAHF_STORES", name.strip())] = _check_location(
                f"PAHF_STORES ({name.strip()})", location.strip()
            )
        models = frozenset(_check_name("PAHF_MODELS", m) for m in _names(env, "PAHF_MODELS"))
        return cls(
            memory_location=_check_location(
                "PAHF_MEMORY", env.get("PAHF_MEMORY", "").strip() or DEFAULT_MEMORY_LOCATION
            ),
            reasoner=cast(ReasonerKind, reasoner),
            model=env.get("PAHF_MODEL", "").strip() or None,
            stores=stores,
            models=models,
            max_open_stores=_env_int(env, "PAHF_MAX_OPEN_STORES", DEFAULT_MAX_OPEN_STORES),
            max_reasoners=_env_int(env, "PAHF_MAX_REASONERS", DEFAULT_MAX_REASONERS),
        )

    def allowed_reasoners(self) -> set[str]:
        return {self.reasoner} | ({"llm"} if self.models else set())

    def admit(self, ctx: RunContext) -> None:
        """Refuse a run whose context chooses a store, reasoner or model the operator did not
        allow, before anything is read or stored. The message names the field and what is
        allowed, never echoes a path back as if it were checked."""
        if ctx.memory_location is not None and ctx.memory_location not in self.stores:
            allowed = ", ".join(sorted(self.stores)) or "none: the deployment sets PAHF_MEMORY"
            raise ClientChoiceError(
                "memory_location: this server does not let clients choose where memories are "
                f"stored; name one of the stores its operator allowed ({allowed})"
            )
        if ctx.reasoner is not None and ctx.reasoner not in self.allowed_reasoners():
            raise ClientChoiceError(
                f"reasoner: this server runs {' or '.join(sorted(self.allowed_reasoners()))}; "
                "the deployment chooses the reasoner (PAHF_REASONER)"
            )
        if ctx.model is not None and ctx.model not in self.models | {self.model}:
            allowed = ", ".join(sorted(self.models)) or "none: the deployment sets PAHF_MODEL"
            raise ClientChoiceError(
                f"model: this server does not let clients choose the model; name one of the "
                f"models its operator allowed ({allowed})"
            )

    def location_for(self, ctx: RunContext) -> str:
        if ctx.memory_location is not None:
            return self.stores[ctx.memory_location]
        return self.memory_location

    def reasoner_for(self, ctx: RunContext) -> tuple[str, str | None]:
        kind = ctx.reasoner or self.reasoner
        if kind != "llm":
            return kind, None
        return kind, ctx.model or self.model


def _store_key(location: str) -> str:
    """One cache key per store: a directory by its resolved path, a server by its URL."""
    parsed = parse_location(location)
    if isinstance(parsed, tuple):
        host, port, ssl = parsed
        return f"{'https' if ssl else 'http'}://{host}:{port}"
    return str(parsed.resolve())


class ContextServices:
    """A :data:`~pahf.nodes.services.ServicesProvider`: fixed instances where given, else
    resolved (and cached, bounded) from each run's context.

    ``settings`` None: a trusted, in-process caller; the context's ``memory_location``,
    ``reasoner`` and ``model`` are used as given (locations parsed strictly), defaults from
    ``$PAHF_MEMORY``. With ``settings``: a served graph; see :class:`DeploymentSettings`.
    """

    def __init__(
        self,
        reasoner: Reasoner | None = None,
        memory: PreferenceMemory | None = None,
        *,
        settings: DeploymentSettings | None = None,
        max_open_stores: int = DEFAULT_MAX_OPEN_STORES,
        max_reasoners: int = DEFAULT_MAX_REASONERS,
    ) -> None:
        self._reasoner = reasoner
        self._memory = memory
        self.settings = settings
        if settings is not None:
            max_open_stores, max_reasoners = settings.max_open_stores, settings.max_reasoners
        self.reasoners: LRUCache[tuple[str, str, str | None], Reasoner] = LRUCache(max_reasoners)
        self.stores: LRUCache[str, PreferenceMemory] = LRUCache(
            max_open_stores, close=self._close_store
        )

    def _close_store(self, key: str, store: PreferenceMemory) -> None:
        # reasoners built over a store's encoder go with it
        self.reasoners.pop_where(lambda rkey: rkey[1] == key)
        close_quietly(store)

    def admit(self, ctx: RunContext) -> None:
        """Raise :class:`ClientChoiceError` if a served run's context chooses what it may not."""
        if self.settings is not None:
            self.settings.admit(ctx)

    def _location(self, ctx: RunContext) -> str:
        if self.settings is not None:
            self.settings.admit(ctx)
            return self.settings.location_for(ctx)
        return ctx.memory_location or default_memory_location()

    def memory_for(self, ctx: RunContext) -> PreferenceMemory:
        if self._memory is not None:
            return self._memory
        return self._open_store(self._location(ctx))

    def _open_store(self, location: str) -> PreferenceMemory:
        key = _store_key(location)
        return self.stores.get(key, lambda: ChromaPreferenceMemory(key))

    def reasoner_for(self, ctx: RunContext, memory: PreferenceMemory) -> Reasoner:
        if self._reasoner is not None:
            return self._reasoner
        if self.settings is not None:
            self.settings.admit(ctx)
            kind, model = self.settings.reasoner_for(ctx)
        else:
            kind, model = ctx.reasoner or "offline", ctx.model
        store_key = (
            _store_key(self._location(ctx)) if self._memory is None else f"fixed:{id(memory)}"
        )

        def open_reasoner() -> Reasoner:
            if kind == "offline":
                return OfflineReasoner(memory.encoder)
            from pahf.reasoners.llm import LLMReasoner

            return LLMReasoner.from_settings(model=model)

        return self.reasoners.get((kind, store_key, model), open_reasoner)

    def close(self) -> None:
        """Close every store and reasoner this provider opened (not the fixed ones)."""
        self.reasoners.close()
        self.stores.close()

    def __call__(self, ctx: RunContext) -> Services:
        memory = self.memory_for(ctx)
        return Services(reasoner=self.reasoner_for(ctx, memory), memory=memory)

