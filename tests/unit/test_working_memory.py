"""The evaluation's working store behaves as the Chroma store does, call for call."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from pahf.memory.base import PreferenceMemory, UnknownMemoryError, UnknownUserError, apply_ops
from pahf.memory.chroma import ChromaPreferenceMemory
from pahf.memory.embeddings import HashingEmbeddingFunction, encoder_of
from pahf.memory.schema import MemoryOp, MemoryRecord, NewMemory, RetrievedMemory
from pahf.memory.working import WorkingPreferenceMemory


def _note(text: str, topic: str = "drinks") -> NewMemory:
    return NewMemory(text=text, topic=topic, source="manual")


def _shape(record: MemoryRecord) -> dict[str, Any]:
    """A record without its timestamps (the two stores write at different instants)."""
    data = record.model_dump(exclude={"created_at"})
    data["history"] = [(h["event"], h["detail"]) for h in data["history"]]
    return data


def _script(m: PreferenceMemory) -> list[Any]:
    """The same calls on any store; what each returned, timestamps left out."""
    out: list[Any] = []
    a = m.add("alice", _note("I love green tea"), memory_id="m-a")
    out.append(_shape(a))
    try:  # an id reused with other text is refused, not swallowed
        m.add("alice", _note("something else"), memory_id="m-a")
        out.append("stored")
    except ValueError:
        out.append("refused")
    out.append(_shape(m.add("alice", _note("I love green tea"), memory_id="m-a")))
    m.add("alice", _note("I hate loud music", "music"), memory_id="m-b")
    m.add("bob", _note("bob likes espresso"), memory_id="m-c")
    new = m.supersede("alice", "m-a", _note("now I prefer oolong tea"), memory_id="m-d")
    out.append(_shape(new))
    out.append(_shape(m.supersede("alice", "m-a", _note("again"), memory_id="m-d")))
    out.append(_shape(m.reinforce("alice", "m-d", key="k1")))
    out.append(_shape(m.reinforce("alice", "m-d", key="k1")))  # same signal: counted once
    out.append(_shape(m.challenge("alice", "m-b", detail="d1")))
    out.append([(h.record.id, round(h.score, 4)) for h in m.search("alice", "oolong tea", k=5)])
    out.append([h.record.id for h in m.search("alice", "tea", k=5, include_superseded=True)])
    out.append([h.record.id for h in m.search("alice", "tea", k=1)])
    out.append([_shape(r) for r in m.get_all("alice")])
    out.append([r.id for r in m.get_all("alice", include_superseded=False)])
    out.append([r.id for r in m.history("alice", "m-d")])
    out.append((m.count("alice"), m.count("bob"), m.count("nobody"), m.users()))
    out.append(m.search("nobody", "tea"))
    for call in (
        lambda: m.get("bob", "m-a"),
        lambda: m.supersede("bob", "m-a", _note("bob overwrites alice")),
        lambda: m.supersede("alice", "m-a", _note("revise an old version"), memory_id="m-e"),
        lambda: (
            m.supersede("alice", "m-b", _note("id taken"), memory_id="m-c-x")
            if m.add("alice", _note("x"), memory_id="m-c-x")
            else None
        ),
        lambda: m.reinforce("alice", "m-missing"),
        lambda: m.export("nobody"),
        lambda: m.import_records("alice", m.export("bob")),
        lambda: m.import_records("alice", m.export("alice")[:1]),
    ):
        try:
            call()
            out.append("no error")
        except (UnknownMemoryError, UnknownUserError, ValueError) as exc:
            out.append(f"{type(exc).__name__}: {exc}")
    exported = m.export("alice")
    out.append(m.forget("alice"))
    out.append(m.import_records("alice", exported))
    out.append([_shape(r) for r in m.export("alice")])
    applied = apply_ops(m, "carol", "r1", "answer", [MemoryOp(kind="add", memory=_note("tea"))])
    again = apply_ops(m, "carol", "r1", "answer", [MemoryOp(kind="add", memory=_note("tea"))])
    out.append((applied == again, m.count("carol")))
    with pytest.raises(UnknownUserError):
        m.forget("nobody")
    return out


def test_the_working_store_answers_every_call_as_chroma_does() -> None:
    chroma = ChromaPreferenceMemory.in_memory(HashingEmbeddingFunction())
    working = WorkingPreferenceMemory(encoder_of(HashingEmbeddingFunction()))
    expected, got = _script(chroma), _script(working)
    for index, (want, have) in enumerate(zip(expected, got, strict=True)):
        assert have == want, f"call {index} differs"


def test_returned_records_do_not_alias_stored_ones() -> None:
    m = WorkingPreferenceMemory(encoder_of(HashingEmbeddingFunction()))
    record = m.add("u", _note("tea"), memory_id="m-1")
    record.text = "changed by the caller"
    record.history.clear()
    m.get("u", "m-1").confidence = 99.0
    stored = m.get("u", "m-1")
    assert stored.text == "tea" and stored.confidence == 1.0 and len(stored.history) == 1


def test_no_way_out_of_the_store_aliases_a_stored_record() -> None:
    """Every read hands out a copy, its history list included (the store copies records field
    by field, not with ``deepcopy``)."""
    m = WorkingPreferenceMemory(encoder_of(HashingEmbeddingFunction()))
    m.add("u", _note("tea"), memory_id="m-1")
    m.reinforce("u", "m-1", key="k")
    reads = [
        m.get_all("u")[0],
        m.search("u", "tea")[0].record,
        m.get("u", "m-1"),
        m.export("u")[0],
        m.history("u", "m-1")[0],
        m.reinforce("u", "m-1", key="k"),
    ]
    for read in reads:
        with pytest.raises(ValidationError):  # entries are immutable, so copies share them
            read.history[0].detail = "changed by the caller"
        read.history.append(read.history[0])
        read.status = "superseded"
    stored = m.get("u", "m-1")
    assert [h.detail for h in stored.history] == ["manual", "k"]
    assert stored.status == "active"


def test_the_copy_knows_every_field_of_a_record() -> None:
    """``_detached`` copies ``history`` by hand and shares every other field: a new mutable
    field on MemoryRecord (a list, a dict, a model) must be copied there too."""
    immutable = (str, float, int, type(None))
    record = MemoryRecord.model_validate(
        {"id": "m", "user_id": "u", "text": "t", "created_at": "now", "history": []}
    )
    shared = {
        name
        for name in MemoryRecord.model_fields
        if name != "history" and not isinstance(getattr(record, name), immutable)
    }
    assert not shared
    assert set(MemoryRecord.model_fields) == {
        "id",
        "user_id",
        "text",
        "topic",
        "domain",
        "source",
        "status",
        "confidence",
        "created_at",
        "request_id",
        "supersedes",
        "superseded_by",
        "history",
    }, "MemoryRecord changed: check that memory/working.py's _detached copies the new fields"


def test_search_hits_are_what_validation_would_build() -> None:
    """Hits are built without re-validating the stored record; they equal validated ones."""
    m = WorkingPreferenceMemory(encoder_of(HashingEmbeddingFunction()))
    m.add("u", _note("tea"), memory_id="m-1")
    m.add("u", _note("green tea"), memory_id="m-2")
    hits = m.search("u", "tea")
    assert [type(h) for h in hits] == [RetrievedMemory, RetrievedMemory]
    for hit in hits:
        assert hit == RetrievedMemory.model_validate(hit.model_dump())
        assert hit.model_fields_set == {"record", "score"}
