"""Parsed, validated documents kept for the query texts that come back.

Why not strawberry's ParserCache (plus a cache of validation results): both keep ANY document
that arrives, and a client posting fresh documents fills them with hundreds of thousands of
syntax-tree nodes. Python's cyclic garbage collector tracks every one of those nodes, and its
full collections walk them all while the event loop waits: with 512 cached adversarial
documents (1.8 million live objects) one full collection paused the server for 0.8 s, and
`{__typename}` answered at p99 824 ms while two clients looped such documents
(bench/validation.py).

Applications send the same few operations again and again; attackers (and the odd one-off
query) send each text once. So a text is admitted only the second time it validates cleanly
(the first time only its hash is remembered: an int, which the collector does not track), and
the cache is bounded by source bytes as well as entries. Everything else is parsed and
validated afresh, which the validation bounds (chatr.schema.validation) keep cheap.
"""

from __future__ import annotations

from collections import OrderedDict

from graphql import DocumentNode

MAX_DOCUMENT_BYTES = 16 * 1024
MAX_TOTAL_BYTES = 256 * 1024
MAX_SEEN_ONCE = 4096


class DocumentCache:
    """An LRU of query text -> validated document, admitting a text on its second arrival."""

    def __init__(
        self,
        *,
        max_total_bytes: int = MAX_TOTAL_BYTES,
        max_document_bytes: int = MAX_DOCUMENT_BYTES,
        max_seen_once: int = MAX_SEEN_ONCE,
    ) -> None:
        self._documents: OrderedDict[str, DocumentNode] = OrderedDict()
        self._seen_once: OrderedDict[int, None] = OrderedDict()
        self._bytes = 0
        self._max_total_bytes = max_total_bytes
        self._max_document_bytes = max_document_bytes
        self._max_seen_once = max_seen_once

    def get(self, text: str) -> DocumentNode | None:
        document = self._documents.get(text)
        if document is not None:
            self._documents.move_to_end(text)
        return document

    def validated(self, text: str, document: DocumentNode) -> None:
        """Note that `text` parsed to `document` and validated without errors."""
        if len(text) > self._max_document_bytes or text in self._documents:
            return
        key = hash(text)
        if key not in self._seen_once:
            self._seen_once[key] = None
            if len(self._seen_once) > self._max_seen_once:
                self._seen_once.popitem(last=False)
            return
        del self._seen_once[key]
        self._documents[text] = document
        self._bytes += len(text)
        while self._bytes > self._max_total_bytes:
            evicted, _ = self._documents.popitem(last=False)
            self._bytes -= len(evicted)

    def __len__(self) -> int:
        return len(self._documents)

    @property
    def total_bytes(self) -> int:
        return self._bytes
