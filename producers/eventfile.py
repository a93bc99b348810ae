"""Reading event files: one JSON event per line, ``.jsonl`` or ``.jsonl.gz``, in arrival order.

Files may be many gigabytes, so everything here streams in fixed-size chunks. Gzip is recognised by
its magic bytes (a ``.gz`` name that is not gzip is an error). Line numbers are 1-based physical
line numbers of the (decompressed) file, counting the blank lines that are skipped.

>>> import tempfile, os
>>> d = tempfile.mkdtemp(); p = os.path.join(d, "e.jsonl")
>>> _ = open(p, "wb").write(b'{"a":1}\\n\\n  \\n{"b":2}\\r\\n{"c":3}')
>>> list(iter_lines(p))
[(1, b'{"a":1}'), (4, b'{"b":2}'), (5, b'{"c":3}')]
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path
from typing import BinaryIO, Iterator

#: Bytes read (of the decompressed stream) per chunk.
CHUNK_BYTES = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"


class EventFileError(OSError):
    """An event file that cannot be opened or read; the message names the file (and line)."""


class EventFile:
    """An open event file. Iterate :meth:`lines` once; :attr:`position` is how far the underlying
    (for gzip: compressed) file has been read, to compare with :attr:`size` for progress.

    ``max_line_bytes`` bounds the memory one line may take: a longer line is returned cut to
    ``max_line_bytes + 1`` bytes (so the caller can tell it is over the limit) and the rest of it
    is skipped. ``None`` keeps lines whole.
    """

    def __init__(self, path: str | os.PathLike[str], *, max_line_bytes: int | None = None) -> None:
        self.path = Path(path)
        self.max_line_bytes = max_line_bytes
        try:
            raw = open(self.path, "rb")
        except FileNotFoundError:
            raise EventFileError(f"{self.path}: no such event file") from None
        except IsADirectoryError:
            raise EventFileError(f"{self.path}: is a directory, not an event file") from None
        except OSError as exc:
            raise EventFileError(f"{self.path}: cannot open: {exc.strerror or exc}") from None
        self._raw: BinaryIO = raw
        try:
            self.size = os.fstat(raw.fileno()).st_size
            head = raw.read(2)
            raw.seek(0)
        except OSError as exc:
            raw.close()
            raise EventFileError(f"{self.path}: cannot read: {exc.strerror or exc}") from None
        self.compressed = head == GZIP_MAGIC
        if not self.compressed and self.path.suffix == ".gz" and self.size > 0:
            raw.close()
            raise EventFileError(f"{self.path}: not a gzip file (the name ends in .gz)")
        self._stream: BinaryIO = (
            gzip.GzipFile(fileobj=raw, mode="rb") if self.compressed else raw  # type: ignore[assignment]
        )

    @property
    def position(self) -> int:
        """Bytes of the file on disk read so far (compressed bytes for gzip)."""
        try:
            return self._raw.tell()
        except (OSError, ValueError):
            return self.size

    def close(self) -> None:
        try:
            if self._stream is not self._raw:
                self._stream.close()
        finally:
            self._raw.close()

    def __enter__(self) -> "EventFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self, lineno: int) -> bytes:
        try:
            return self._stream.read(CHUNK_BYTES)
        except (gzip.BadGzipFile, zlib.error, EOFError) as exc:
            raise EventFileError(
                f"{self.path}: unreadable gzip data after line {lineno}: {exc}"
            ) from None
        except OSError as exc:
            raise EventFileError(f"{self.path}: read error after line {lineno}: {exc}") from None

    def blocks(self) -> Iterator[tuple[int, bytes]]:
        """Yield ``(lineno_of_first, block)``: about ``CHUNK_BYTES`` of the (decompressed) file
        cut after a newline, so each block holds whole lines; :func:`split_block` turns one into
        lines. Over-long lines are cut to ``max_line_bytes + 1`` bytes along the way."""
        lineno = 1
        carry = b""
        cap = self.max_line_bytes
        while True:
            data = self._read(lineno)
            if not data:
                break
            if carry:
                data = carry + data
            cut = data.rfind(b"\n")
            if cut < 0:
                carry = data if cap is None or len(data) <= cap else data[: cap + 1]
                continue
            block = data[: cut + 1]
            carry = data[cut + 1 :]
            if cap is not None and len(carry) > cap:
                carry = carry[: cap + 1]
            yield lineno, block
            lineno += block.count(b"\n")
        if carry:
            yield lineno, carry

    def chunks(self) -> Iterator[tuple[int, list[bytes]]]:
        """Yield ``(lineno_of_first, lines)``: consecutive physical lines of the file, newline
        (and a trailing ``\\r``) removed, blank lines included as they are. Faster than
        :meth:`lines` for callers that loop over the list themselves."""
        cap = self.max_line_bytes
        for first, block in self.blocks():
            yield first, split_block(block, cap)

    def lines(self) -> Iterator[tuple[int, bytes]]:
        """Yield ``(lineno, line)`` for every non-blank line."""
        for first, parts in self.chunks():
            for offset, line in enumerate(parts):
                if line and not line.isspace():
                    yield first + offset, line


def split_block(block: bytes, max_line_bytes: int | None = None) -> list[bytes]:
    """The physical lines of a block from :meth:`EventFile.blocks`: newline and one trailing
    ``\\r`` removed, blank lines kept, lines over ``max_line_bytes`` cut to that plus one byte."""
    lines = block.split(b"\n")
    if block[-1:] == b"\n":
        lines.pop()
    if max_line_bytes is not None and len(block) > max_line_bytes and lines:
        if max(map(len, lines)) > max_line_bytes:
            lines = [line[: max_line_bytes + 1] for line in lines]
    if b"\r" in block:
        lines = [line[:-1] if line[-1:] == b"\r" else line for line in lines]
    return lines


def open_event_file(path: str | os.PathLike[str], *, max_line_bytes: int | None = None) -> EventFile:
    """Open an event file (raises :class:`EventFileError` at once if it is missing or unreadable)."""
    return EventFile(path, max_line_bytes=max_line_bytes)


def iter_lines(
    path: str | os.PathLike[str], *, max_line_bytes: int | None = None
) -> Iterator[tuple[int, bytes]]:
    """Stream ``(lineno, line_bytes)`` of an event file: 1-based line numbers, blank lines
    skipped, no newline. A missing file or one that is not gzip despite its name raises
    :class:`EventFileError` here, before iteration; corrupt gzip data raises it while iterating."""
    ef = EventFile(path, max_line_bytes=max_line_bytes)
    return _closing_lines(ef)


def _closing_lines(ef: EventFile) -> Iterator[tuple[int, bytes]]:
    try:
        yield from ef.lines()
    finally:
        ef.close()


def is_blank(line: bytes) -> bool:
    return not line or line.isspace()


__all__ = [
    "CHUNK_BYTES",
    "EventFile",
    "EventFileError",
    "is_blank",
    "iter_lines",
    "open_event_file",
    "split_block",
]

