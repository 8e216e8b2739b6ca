"""The offline reasoner's speed-ups are mechanical: each gives exactly what the plain
computation it replaces gives (written out here as that plain computation)."""

from __future__ import annotations

import re

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pahf.reasoners import features
from pahf.reasoners.features import Statement
from pahf.reasoners.phrases import Phrase

_WORDS = ["in-ear", "on-ear", "design", "wired", "Wired", "connection", "oled", "qd-oled", "panel"]
_text = st.lists(st.sampled_from(_WORDS), min_size=1, max_size=3).map(" ".join)


def _plain_agreement(feature: str, statement: str, similarity: float) -> float:
    """agreement() as first written: words parsed for every pair."""
    def words(text: str) -> list[str]:
        return re.findall(r"[a-z0-9]+(?:[-.][a-z0-9]+)*", text.lower())

    if words(feature) == words(statement):
        return 1.0
    wa, wb = set(words(feature)), set(words(statement))
    overlap = 2.0 * len(wa & wb) / (len(wa) + len(wb)) if wa and wb else 0.0
    return min(similarity, overlap)


@settings(max_examples=200, deadline=None)
@given(
    feats=st.lists(_text, min_size=0, max_size=4),
    said=st.lists(_text, min_size=0, max_size=4),
    data=st.data(),
)
def test_naming_is_agreement_pair_by_pair(
    feats: list[str], said: list[str], data: st.DataObject
) -> None:
    sims = np.array(
        data.draw(
            st.lists(
                st.lists(st.floats(-1.0, 1.0, width=32), min_size=len(said), max_size=len(said)),
                min_size=len(feats),
                max_size=len(feats),
            )
        ),
        dtype=np.float32,
    ).reshape(len(feats), len(said))
    statements = [Statement(Phrase(t, 1.0), f"m{j}", 1.0, (0, "", "")) for j, t in enumerate(said)]
    got = features.naming(feats, statements, sims)
    plain = np.zeros((len(feats), len(said)), dtype=np.float32)
    for i, f in enumerate(feats):
        for j, t in enumerate(said):
            plain[i, j] = _plain_agreement(f, t, float(sims[i, j]))
    if plain.size and plain.max() < 1.0:  # nobody uses the request's words: meaning decides
        # A statement names the features nearest to it, the surer the closer.
        for j in range(len(said)):
            nearest = max(float(sims[i, j]) for i in range(len(feats)))
            for i in range(len(feats)):
                c = sims[i, j]
                near = c >= features.PARAPHRASE and c >= np.float32(nearest) - 0.02
                plain[i, j] = (
                    features.IDENTITY
                    + (c - features.PARAPHRASE)
                    * (0.99 - features.IDENTITY)
                    / (1.0 - features.PARAPHRASE)
                    if near
                    else 0.0
                )
    assert got.shape == plain.shape
    assert got.tobytes() == plain.astype(np.float32).tobytes()
    for i, f in enumerate(feats):
        for j, t in enumerate(said):
            assert features.agreement(f, t, float(sims[i, j])) == _plain_agreement(
                f, t, float(sims[i, j])
            )
