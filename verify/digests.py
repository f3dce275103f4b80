"""Content digests: syntax, and checking bytes or a stream against the digest that names them."""

from __future__ import annotations

import hashlib
import re
from typing import Protocol

DIGEST_PATTERN = re.compile(r"sha256:[0-9a-f]{64}")


class DigestMismatch(Exception):
    """Content whose sha256 differs from the digest it was fetched by."""

    def __init__(self, what: str, expected: str, actual: str) -> None:
        super().__init__(f"{what}: content digest is {actual}, expected {expected}")
        self.expected = expected
        self.actual = actual


class Readable(Protocol):
    """Anything with ``read(n)`` returning bytes (b"" at the end)."""

    def read(self, size: int = -1, /) -> bytes: ...


def sha256_digest(data: bytes) -> str:
    """The ``sha256:<hex>`` digest of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_bytes(what: str, data: bytes, expected: str) -> None:
    """Raise :class:`DigestMismatch` unless ``data`` hashes to ``expected``."""
    actual = sha256_digest(data)
    if actual != expected:
        raise DigestMismatch(what, expected, actual)


class DigestingReader:
    """Passes a stream through while hashing it; :meth:`finish` drains it and checks the digest.

    The layer scanner reads decompressed tar data only up to the end-of-archive marker, so the
    compressed stream may have bytes left; ``finish`` reads them so the whole blob is hashed.
    """

    def __init__(self, source: Readable, expected: str, what: str) -> None:
        self._source = source
        self._expected = expected
        self._what = what
        self._hash = hashlib.sha256()
        self.bytes_read = 0

    def read(self, size: int = -1, /) -> bytes:
        chunk = self._source.read(size)
        self._hash.update(chunk)
        self.bytes_read += len(chunk)
        return chunk

    def finish(self, chunk_size: int = 1 << 20) -> None:
        """Read what is left, then raise :class:`DigestMismatch` if the content differs."""
        while self.read(chunk_size):
            pass
        actual = "sha256:" + self._hash.hexdigest()
        if actual != self._expected:
            raise DigestMismatch(self._what, self._expected, actual)
