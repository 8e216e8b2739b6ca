"""The default embedding model is semantic, offline, hash-verified and registered with Chroma."""

from __future__ import annotations

from pathlib import Path

import chromadb
import numpy as np
import pytest
from chromadb.config import Settings

from pahf.memory.chroma import ChromaPreferenceMemory
from pahf.memory.embeddings import (
    EmbeddingModelError,
    HashingEncoder,
    LangChainEmbeddingFunction,
    MiniLMEmbeddingFunction,
    MiniLMEncoder,
)
from pahf.memory.schema import NewMemory


def _count_model_runs(encoder: HashingEncoder) -> list[list[str]]:
    """The batches ``encoder`` sends to its model from now on (cache misses only)."""
    calls: list[list[str]] = []
    real = encoder._encode

    def counting(batch: list[str]) -> np.ndarray:
        calls.append(batch)
        return real(batch)

    encoder._encode = counting  # type: ignore[method-assign]
    return calls


def _cos(enc: MiniLMEncoder | HashingEncoder, a: str, b: str) -> float:
    v = enc.encode([a, b])
    return float(v[0] @ v[1])


def test_minilm_is_semantic() -> None:
    enc = MiniLMEncoder.shared()
    assert _cos(enc, "spicy food", "hot chili dishes") > _cos(enc, "spicy food", "a red car") + 0.3
    assert _cos(enc, "ice-cold water with lots of ice", "chilled water with ice") > 0.7
    vecs = enc.encode(["a", "b", "a"])
    assert vecs.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)
    assert np.allclose(vecs[0], vecs[2])


def test_minilm_paraphrase_retrieval_top1() -> None:
    enc = MiniLMEncoder.shared()
    docs = [
        "black coffee",
        "herbal tea",
        "ice-cold water",
        "almonds",
        "fruit smoothie",
        "energy drink",
    ]
    queries = ["a cup of dark roast", "chamomile infusion", "chilled water", "a handful of nuts"]
    sims = enc.encode(queries) @ enc.encode(docs).T
    assert [docs[i] for i in sims.argmax(axis=1)] == docs[:4]


def test_hashing_is_lexical_only() -> None:
    enc = HashingEncoder()
    assert _cos(enc, "green tea", "green tea please") > 0.6
    assert _cos(enc, "spicy food", "hot chili dishes") < 0.3


def test_model_file_is_verified(tmp_path: Path) -> None:
    fake = tmp_path / "model.onnx"
    fake.write_bytes(b"not the model")
    with pytest.raises(EmbeddingModelError, match="sha256"):
        MiniLMEncoder(model_path=fake)
    with pytest.raises(EmbeddingModelError, match="cannot read"):
        MiniLMEncoder(model_path=tmp_path / "missing.onnx")


def test_registered_function_survives_reopen_without_passing_it(tmp_path: Path) -> None:
    store = ChromaPreferenceMemory(tmp_path / "s")
    store.add("alice", NewMemory(text="I like green tea", topic="drinks"))
    client = chromadb.PersistentClient(
        path=str(tmp_path / "s"), settings=Settings(anonymized_telemetry=False)
    )
    (col,) = client.list_collections()
    reopened = client.get_collection(col.name)  # no embedding function passed
    result = reopened.query(query_texts=["green tea"], n_results=1)
    assert result["documents"] == [["I like green tea"]]
    assert MiniLMEmbeddingFunction.name() in str(reopened.configuration_json)


def test_langchain_embeddings_adapter() -> None:
    from langchain_core.embeddings import DeterministicFakeEmbedding

    ef = LangChainEmbeddingFunction(DeterministicFakeEmbedding(size=16), label="fake")
    store = ChromaPreferenceMemory.in_memory(ef)
    store.add("u", NewMemory(text="tea"))
    assert store.search("u", "tea")[0].record.text == "tea"
    with pytest.raises(EmbeddingModelError, match="pass the same"):
        LangChainEmbeddingFunction.build_from_config({"label": "fake"})


def test_a_primed_cache_spares_the_model_and_refuses_wrong_shapes() -> None:
    """Evaluation workers hand their vectors to the parent, which primes its encoder with them
    before archiving memories: encoding those texts must not run the model again."""
    from pahf.memory.embeddings import HashingEncoder

    source, target = HashingEncoder(), HashingEncoder()
    texts = ["I want green tea", "never coffee"]
    vectors = source.encode(texts)
    calls = _count_model_runs(target)
    target.prime(texts, vectors)
    assert np.array_equal(target.encode(texts), vectors) and calls == []
    target.encode(["something new"])
    assert calls == [["something new"]]
    with pytest.raises(ValueError, match="prime"):
        target.prime(texts, vectors[:1])


def test_swapped_caches_keep_each_user_of_a_shared_model_apart() -> None:
    """The throughput benchmark interleaves the graph and the bare driver on one shared model:
    each must pay for its own embeddings, never be served the other's."""
    from pahf.memory.embeddings import VectorCache

    encoder = HashingEncoder()
    calls = _count_model_runs(encoder)
    encoder.encode(["green tea"])
    second = VectorCache()
    with encoder.using_cache(second):
        encoder.encode(["green tea"])  # the new cache is empty: computed again
        assert calls == [["green tea"], ["green tea"]] and encoder.cached_texts() == 1
    encoder.encode(["green tea"])  # back on the first cache: served from it
    assert len(calls) == 2 and len(second) == 1


class _CountingEncoder(HashingEncoder):
    """A hashing encoder that counts the texts it really computes."""

    def __init__(self) -> None:
        super().__init__(dim=64)
        self.computed: list[str] = []

    def _encode(self, texts: list[str]) -> np.ndarray:
        self.computed.extend(texts)
        return super()._encode(texts)


def test_the_disk_cache_serves_another_encoder_what_one_computed(tmp_path: Path) -> None:
    from pahf.memory.embeddings import DiskVectorCache

    first, second = _CountingEncoder(), _CountingEncoder()
    first.disk = DiskVectorCache(tmp_path / "v.sqlite3", 64)
    second.disk = DiskVectorCache(tmp_path / "v.sqlite3", 64)
    want = first.encode(["green tea", "black coffee", "green tea"])
    assert first.computed == ["black coffee", "green tea"]
    got = second.encode(["black coffee", "green tea", "water"])
    assert second.computed == ["water"]  # the other two came from disk
    np.testing.assert_array_equal(got[:2], want[[1, 0]])
    np.testing.assert_array_equal(got[2], HashingEncoder(64).encode(["water"])[0])


def test_an_unreadable_disk_cache_is_switched_off_with_a_warning(tmp_path: Path) -> None:
    from pahf.memory.embeddings import DiskVectorCache

    bad = tmp_path / "v.sqlite3"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.warns(RuntimeWarning, match="embedding cache switched off"):
        cache = DiskVectorCache(bad, 64)
        encoder = _CountingEncoder()
        encoder.disk = cache
        vectors = encoder.encode(["tea"])
    assert not cache.enabled and encoder.computed == ["tea"] and vectors.shape == (1, 64)
    assert bad.read_bytes().startswith(b"this is not")  # left as it was


def test_the_disk_cache_location_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pahf.memory.embeddings import CACHE_ENV, default_cache_dir

    monkeypatch.setenv(CACHE_ENV, "off")
    assert default_cache_dir() is None
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "pahf" / "embeddings"


def test_similarity_is_the_cosine_matrix_and_a_repeat_costs_no_encoding() -> None:
    encoder = HashingEncoder(64)
    a, b = ["green tea", "black coffee"], ["tea", "coffee", "water"]
    sims = encoder.similarity(a, b)
    vectors = encoder.encode([*a, *b])
    assert sims.shape == (2, 3) and sims.dtype == np.float32
    assert np.allclose(sims, vectors[:2] @ vectors[2:].T)
    with pytest.raises(ValueError):  # shared between callers: nobody may change it
        sims[0, 0] = 1.0
    calls: list[list[str]] = []
    real = encoder.encode
    encoder.encode = lambda texts: calls.append(list(texts)) or real(texts)  # type: ignore[method-assign]
    assert encoder.similarity(a, b) is sims and not calls
    assert encoder.similarity(b, a).shape == (3, 2) and calls  # another pair is computed
    assert encoder.similarity([], b).shape == (0, 3)
    encoder.clear_cache()
    calls.clear()
    assert np.array_equal(encoder.similarity(a, b), sims) and calls
