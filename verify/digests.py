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


class SizeMismatch(Exception):
    """A blob or document whose length differs from the size its descriptor declares."""


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

    At most ``size`` bytes (the descriptor's) are read: a stream that ends sooner, or goes on
    after them, raises :class:`SizeMismatch`, so a registry cannot make the verifier read more
    than the manifest promised. The tar reader stops at the end-of-archive marker, so the
    compressed stream may have bytes left; ``finish`` reads them so the whole blob is hashed.
    """

    def __init__(self, source: Readable, expected: str, size: int, what: str) -> None:
        self._source = source
        self._expected = expected
        self._size = size
        self._what = what
        self._hash = hashlib.sha256()
        self.bytes_read = 0

    def read(self, size: int = -1, /) -> bytes:
        remaining = self._size - self.bytes_read
        if remaining == 0 or size == 0:
            return b""
        chunk = self._source.read(remaining if size < 0 else min(size, remaining))
        if not chunk:
            raise SizeMismatch(
                f"{self._what} ends after {self.bytes_read} bytes; its descriptor declares "
                f"{self._size}"
            )
        self._hash.update(chunk)
        self.bytes_read += len(chunk)
        return chunk

    def finish(self, chunk_size: int = 1 << 20) -> None:
        """Read what is left, then raise :class:`SizeMismatch` or :class:`DigestMismatch`."""
        while self.read(chunk_size):
            pass
        if self._source.read(1):
            raise SizeMismatch(
                f"{self._what} goes on after the {self._size} bytes its descriptor declares"
            )
        actual = "sha256:" + self._hash.hexdigest()
        if actual != self._expected:
            raise DigestMismatch(self._what, self._expected, actual)
