"""Digests of a whole column at once, as the online doors write them one at a time.

`hashlib` has no batch form, so each row still costs one digest call (about 0.3 us); everything around it
(the hex text, a UUID's version bits and dashes, the `sha256:` prefix) is done on the digests as one numpy
array and handed to Arrow as a single buffer, rather than a Python string built per row.

    fingerprint(document)          == sha256_texts(canonical JSON of each document)[i]   (shared.core.decision)
    decision_id_for(service, id)   == decision_ids(service, event ids)[i]                 (shared.core.decision)
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shared.core.decision import _DECISION_IDS

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_UUID_DASHES = (8, 13, 18, 23)  # where `str(uuid.UUID)` puts its dashes in the 36 characters


def sha256_texts(payloads: pa.Array | pa.ChunkedArray, prefix: str = "sha256:") -> pa.Array:
    """`prefix + sha256(payload).hexdigest()` of every text, as one Arrow string array."""
    sha256 = hashlib.sha256
    digests = b"".join([sha256(b).digest() for b in _as_bytes(payloads)])
    return _fixed_texts(prefix.encode(), _hex(_matrix(digests, 32)))


def decision_ids(service: str, event_ids: pa.Array | pa.ChunkedArray | Sequence[str]) -> pa.Array:
    """`decision_id_for(service, event_id)` of every event id (a name-based UUID, version 5: SHA-1 of the
    namespace and `service/event_id`, its version and variant bits set), as one Arrow string array."""
    ids = pa.array(event_ids, pa.string()) if not isinstance(event_ids, pa.Array | pa.ChunkedArray) else event_ids
    names = pc.binary_join_element_wise(pa.scalar(f"{service}/"), ids.cast(pa.string()), "")
    namespace, sha1 = _DECISION_IDS.bytes, hashlib.sha1
    digests = _matrix(b"".join([sha1(namespace + name).digest() for name in _as_bytes(names)]), 20)[:, :16].copy()
    digests[:, 6] = (digests[:, 6] & 0x0F) | 0x50  # as uuid.uuid5 does
    digests[:, 8] = (digests[:, 8] & 0x3F) | 0x80
    text = _hex(digests)
    dashed = np.full((len(text), 36), ord("-"), dtype=np.uint8)
    keep = np.ones(36, dtype=bool)
    keep[list(_UUID_DASHES)] = False
    dashed[:, keep] = text
    return _fixed_texts(b"", dashed)


def _as_bytes(texts: pa.Array | pa.ChunkedArray) -> list[bytes]:
    """Each text as its UTF-8 bytes (what `str.encode()` gives), read from Arrow without a `str` each."""
    return texts.cast(pa.binary()).to_pylist()


def _matrix(digests: bytes, width: int) -> np.ndarray:
    return np.frombuffer(digests, dtype=np.uint8).reshape(-1, width)


def _hex(digests: np.ndarray) -> np.ndarray:
    """Each row of bytes as lowercase hex characters, two a byte."""
    text = np.empty((digests.shape[0], digests.shape[1] * 2), dtype=np.uint8)
    text[:, 0::2] = _HEX[digests >> 4]
    text[:, 1::2] = _HEX[digests & 0x0F]
    return text


def _fixed_texts(prefix: bytes, characters: np.ndarray) -> pa.Array:
    """Rows of ASCII characters of one width, each after `prefix`, as an Arrow string array over one buffer."""
    n, width = characters.shape
    row = len(prefix) + width
    data = np.empty((n, row), dtype=np.uint8)
    data[:, : len(prefix)] = np.frombuffer(prefix, dtype=np.uint8)
    data[:, len(prefix) :] = characters
    offsets = np.arange(0, (n + 1) * row, row, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
