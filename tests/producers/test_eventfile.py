"""Event files: plain and gzip, blank lines, line numbers, errors, streaming."""

from __future__ import annotations

import gzip
import os
import random
from pathlib import Path

import pytest

from producers import eventfile
from producers.eventfile import EventFile, EventFileError, iter_lines, split_block

LINES = [b'{"a":1}', b"", b"   ", b'{"b":2}', b"\t", b'{"c":"x y"}', b'{"d":4}']
EXPECTED = [(1, b'{"a":1}'), (4, b'{"b":2}'), (6, b'{"c":"x y"}'), (7, b'{"d":4}')]


def write(path: Path, data: bytes) -> Path:
    if path.name.endswith(".gz"):
        with gzip.open(path, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)
    return path


@pytest.mark.parametrize("name", ["events.jsonl", "events.jsonl.gz"])
@pytest.mark.parametrize("trailing_newline", [True, False])
def test_lines_and_numbers(tmp_path, name, trailing_newline):
    data = b"\n".join(LINES) + (b"\n" if trailing_newline else b"")
    path = write(tmp_path / name, data)
    assert list(iter_lines(path)) == EXPECTED
    assert list(iter_lines(str(path))) == EXPECTED  # str paths too


def test_crlf_and_blank_only_files(tmp_path):
    path = write(tmp_path / "crlf.jsonl", b'{"a":1}\r\n\r\n{"b":2}\r\n')
    assert list(iter_lines(path)) == [(1, b'{"a":1}'), (3, b'{"b":2}')]
    assert list(iter_lines(write(tmp_path / "blank.jsonl", b"\n\n  \n"))) == []
    assert list(iter_lines(write(tmp_path / "empty.jsonl", b""))) == []
    assert list(iter_lines(write(tmp_path / "empty.jsonl.gz", b""))) == []


def test_gzip_detected_by_content_and_multi_member(tmp_path):
    # gzip data under a name without .gz is still read as gzip
    path = tmp_path / "events.jsonl"
    path.write_bytes(gzip.compress(b'{"a":1}\n') + gzip.compress(b'{"b":2}\n'))
    assert list(iter_lines(path)) == [(1, b'{"a":1}'), (2, b'{"b":2}')]


def test_line_numbers_across_many_chunks(tmp_path, monkeypatch):
    """Small read chunks: lines are split across chunk borders many times over."""
    monkeypatch.setattr(eventfile, "CHUNK_BYTES", 7)
    rng = random.Random(5)
    lines = []
    for i in range(400):
        r = rng.random()
        lines.append(b"" if r < 0.1 else b" " if r < 0.15 else b'{"i":%d,"pad":"%s"}' % (i, b"x" * rng.randint(0, 40)))
    data = b"\n".join(lines) + b"\n"
    expected = [(i + 1, line) for i, line in enumerate(lines) if line.strip()]
    for name in ("a.jsonl", "a.jsonl.gz"):
        path = write(tmp_path / name, data)
        assert list(iter_lines(path)) == expected
        with EventFile(path) as ef:
            firsts = []
            got = []
            for first, block in ef.blocks():
                firsts.append(first)
                got.extend(split_block(block))
            assert got == lines
            assert len(firsts) > 10 and firsts == sorted(firsts)


def test_over_long_lines_are_cut_when_asked(tmp_path, monkeypatch):
    monkeypatch.setattr(eventfile, "CHUNK_BYTES", 64)
    long = b"{" + b"x" * 1000 + b"}"
    path = write(tmp_path / "long.jsonl", b'{"a":1}\n' + long + b"\n" + long + b'\n{"b":2}\n' + long)
    assert list(iter_lines(path)) == [(1, b'{"a":1}'), (2, long), (3, long), (4, b'{"b":2}'), (5, long)]
    cut = list(iter_lines(path, max_line_bytes=100))
    assert cut == [(1, b'{"a":1}'), (2, long[:101]), (3, long[:101]), (4, b'{"b":2}'), (5, long[:101])]


def test_missing_file_is_a_clear_error_before_iterating(tmp_path):
    with pytest.raises(EventFileError, match="no such event file") as info:
        iter_lines(tmp_path / "nope.jsonl")  # raised by the call, not by the first next()
    assert str(tmp_path / "nope.jsonl") in str(info.value)
    with pytest.raises(EventFileError, match="directory"):
        iter_lines(tmp_path)


def test_not_gzip_despite_the_name(tmp_path):
    path = write(tmp_path / "x.jsonl", b'{"a":1}\n')
    os.rename(path, tmp_path / "x.jsonl.gz")
    with pytest.raises(EventFileError, match="not a gzip file"):
        iter_lines(tmp_path / "x.jsonl.gz")


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_unreadable_gzip_is_a_clear_error(tmp_path, damage):
    data = gzip.compress(b"".join(b'{"i":%d}\n' % i for i in range(20000)))
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:
        data = data[:200] + bytes(b ^ 0x5A for b in data[200:400]) + data[400:]
    path = tmp_path / "bad.jsonl.gz"
    path.write_bytes(data)
    with pytest.raises(EventFileError, match="unreadable gzip data") as info:
        for _ in iter_lines(path):
            pass
    assert str(path) in str(info.value)


def test_position_and_size_for_progress(tmp_path):
    data = b"".join(b'{"i":%d}\n' % i for i in range(50000))
    for name in ("p.jsonl", "p.jsonl.gz"):
        path = write(tmp_path / name, data)
        with EventFile(path) as ef:
            assert ef.size == path.stat().st_size
            assert ef.compressed == name.endswith(".gz")
            seen = [ef.position for _ in ef.chunks()]
            assert seen == sorted(seen) and seen[-1] == ef.size


def test_streaming_does_not_read_everything_first(tmp_path):
    """The first line comes out after reading about one chunk, not the whole file."""
    data = b"".join(b'{"i":%d}\n' % i for i in range(300000))  # ~3.6 MB
    path = write(tmp_path / "big.jsonl", data)
    with EventFile(path) as ef:
        it = ef.lines()
        assert next(it) == (1, b'{"i":0}')
        assert ef.position <= 2 * eventfile.CHUNK_BYTES < len(data)


def test_validate_command_uses_iter_lines(tmp_path, capsys):
    from riskmon.cli import main

    good = (
        b'{"event_id":"e1","firm_id":"F00001","type":"payment","event_time":"2026-01-05T10:00:00+08:00",'
        b'"source":"pos-gw","txn_id":"t1","amount":120.5,"direction":"in","channel":"pos"}'
    )
    path = write(tmp_path / "v.jsonl.gz", good + b"\n\nnot json\n" + good + b"\n")
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr()
    assert "3 events, 1 invalid" in out.out
    assert f"{path}:3: " in out.err
