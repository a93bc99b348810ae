"""The embedded Kafka-protocol broker (noida-db) and topic management.

riskmon needs a Kafka-protocol broker. In production that is whatever ``RISKMON_BOOTSTRAP_SERVERS``
points at; for the demo, the tests and a developer's laptop it is the broker binary shipped inside
the ``noida-db`` wheel, started and stopped by :class:`EmbeddedBroker`::

    with EmbeddedBroker() as broker:          # free port, fresh temporary data dir
        print(broker.bootstrap)               # "127.0.0.1:PORT"
        broker.restart()                      # same port, same data

:func:`broker_for` is what commands use: it yields the configured bootstrap servers, or starts an
embedded broker when none are configured. :func:`ensure_topics` creates topics idempotently and
refuses to go on when a co-partitioned topic already exists with another partition count.

Quirks of the embedded broker worth knowing: idle consumers make it spin CPU (keep them few and stop
them promptly), and a SIGKILLed consumer-group member is replaced promptly only with static
membership (``group_instance_id``). Across a restart it keeps its records and committed offsets
but forgets consumer-group generations and idempotent-producer state, and may lose the first
transaction an old producer session commits afterwards; see docs/reliability.md for what riskmon
does about each. :meth:`EmbeddedBroker.stop` stops it through its control channel, because
signals lose acknowledged records.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, Iterable, Iterator, Mapping

if TYPE_CHECKING:
    from riskmon.settings import Settings

#: Name of the broker's log file inside its data dir (stdout and stderr of the process).
LOG_NAME = "riskmon-broker.log"
#: noida-db's control file in its data dir (pid, control port and token of the running server).
CONTROL_NAME = "noida.control.json"
#: How long :meth:`EmbeddedBroker.start` waits for the broker to answer Kafka requests.
DEFAULT_START_TIMEOUT = 30.0
#: How long :meth:`EmbeddedBroker.stop` waits after SIGTERM before sending SIGKILL.
DEFAULT_STOP_TIMEOUT = 10.0
#: Lines of the broker log quoted in start-up errors.
LOG_TAIL_LINES = 30

# Harmless noise the binary prints on every start on older glibc.
_NOISE = ("weak version `GLIBC_",)


class BrokerError(RuntimeError):
    """The embedded broker could not be started, or a topic could not be set up."""


# --------------------------------------------------------------------------------------------
# locating the binary, ports, log tails
# --------------------------------------------------------------------------------------------


def find_binary() -> Path:
    """Path of the noida-db broker binary inside the installed ``noida_db`` package."""
    spec = importlib.util.find_spec("noida_db")
    if spec is None or not spec.submodule_search_locations:
        raise BrokerError(
            "the noida-db package is not installed; install riskmon's dependencies "
            "(pip install -e .) or set RISKMON_BOOTSTRAP_SERVERS to use another broker"
        )
    for location in spec.submodule_search_locations:
        for name in ("noida-db", "noida-db.exe"):
            path = Path(location) / name
            if path.is_file():
                if not os.access(path, os.X_OK):
                    try:
                        path.chmod(path.stat().st_mode | 0o111)
                    except OSError as exc:
                        raise BrokerError(f"broker binary {path} is not executable: {exc}") from None
                return path
    raise BrokerError(
        f"the noida-db package at {list(spec.submodule_search_locations)} has no broker binary"
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (another process may still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_is_bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode("utf-8", "replace")
    except OSError:
        return "(no log)"
    kept = [ln for ln in data.splitlines() if ln.strip() and not any(n in ln for n in _NOISE)]
    return "\n".join(kept[-lines:]) or "(log is empty)"


# --------------------------------------------------------------------------------------------
# a tiny synchronous Kafka client for the readiness probe (usable inside or outside an event loop)
# --------------------------------------------------------------------------------------------


def _kafka_request(sock: socket.socket, api_key: int, version: int, corr: int, body: bytes) -> bytes:
    client_id = b"riskmon-probe"
    header = struct.pack(">hhih", api_key, version, corr, len(client_id)) + client_id
    payload = header + body
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    size = struct.unpack(">i", _recv_exact(sock, 4))[0]
    data = _recv_exact(sock, size)
    (got_corr,) = struct.unpack(">i", data[:4])
    if got_corr != corr:
        raise ConnectionError(f"correlation id {got_corr} != {corr}")
    return data[4:]


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by the broker")
        buf += chunk
    return bytes(buf)


def probe_kafka(host: str, port: int, timeout: float = 2.0) -> None:
    """Raise unless a Kafka broker answers ApiVersions and Metadata (listing itself) at host:port."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        # ApiVersions v0: empty body; response = error_code int16, then the versions array.
        resp = _kafka_request(sock, 18, 0, 1, b"")
        (error_code,) = struct.unpack(">h", resp[:2])
        if error_code != 0:
            raise ConnectionError(f"ApiVersions error code {error_code}")
        # Metadata v0 with an empty topic list; response starts with the brokers array.
        resp = _kafka_request(sock, 3, 0, 2, struct.pack(">i", 0))
        (n_brokers,) = struct.unpack(">i", resp[:4])
        if n_brokers < 1:
            raise ConnectionError("the broker lists no brokers in its metadata yet")


def _pdeathsig_setter() -> Any:
    """A function for ``preexec_fn`` that asks Linux to SIGTERM the child when its parent thread
    exits, resolved here in the parent (the child only calls it: no imports after fork)."""
    try:
        import ctypes

        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except Exception:
        return None
    sigterm = int(signal.SIGTERM)

    def set_pdeathsig() -> None:  # pragma: no cover - runs in the child between fork and exec
        prctl(1, sigterm)  # PR_SET_PDEATHSIG

    return set_pdeathsig


# --------------------------------------------------------------------------------------------
# the embedded broker
# --------------------------------------------------------------------------------------------


class EmbeddedBroker:
    """A noida-db Kafka-protocol broker run as a child process.

    ``port=0`` picks a free port at the first start; restarts keep it. Without ``data_dir`` a fresh
    temporary directory is created and removed by :meth:`close` (and on leaving the ``with``
    block); a given ``data_dir`` is created if needed and kept. The broker's output goes to
    ``<data_dir>/riskmon-broker.log``.

    ``kill_on_parent_exit`` asks Linux to SIGTERM the broker when the thread that started it
    exits, so a killed test run leaves no broker behind: start it from a long-lived thread.
    """

    def __init__(
        self,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        data_dir: str | os.PathLike[str] | None = None,
        start_timeout: float = DEFAULT_START_TIMEOUT,
        stop_timeout: float = DEFAULT_STOP_TIMEOUT,
        binary: str | os.PathLike[str] | None = None,
        kill_on_parent_exit: bool = True,
    ) -> None:
        if not 0 <= int(port) <= 65535:
            raise ValueError(f"port must be between 0 and 65535, got {port}")
        self.host = host
        self._requested_port = int(port)
        self.port: int | None = int(port) or None
        self._own_dir = data_dir is None
        self._data_dir: Path | None = Path(data_dir) if data_dir is not None else None
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._binary = Path(binary) if binary is not None else None
        self.kill_on_parent_exit = kill_on_parent_exit and sys.platform.startswith("linux")
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_fh: Any = None
        self._closed = False

    # ---- properties ------------------------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        """``host:port`` for Kafka clients (the port is known once started, or if given)."""
        if self.port is None:
            raise BrokerError("the embedded broker has no port yet: start() it first")
        return f"{self.host}:{self.port}"

    @property
    def data_dir(self) -> Path:
        if self._data_dir is None:
            self._data_dir = Path(tempfile.mkdtemp(prefix="riskmon-broker-"))
        return self._data_dir

    @property
    def log_path(self) -> Path:
        return self.data_dir / LOG_NAME

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return _tail(self.log_path, lines)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<EmbeddedBroker {self.host}:{self.port or '?'} {state} data_dir={self._data_dir}>"

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> "EmbeddedBroker":
        """Start the broker and wait until it answers Kafka requests; raise :class:`BrokerError`
        (with the tail of its log) if it exits or does not come up within ``start_timeout``."""
        self._spawn_with_retries(wait=True)
        return self

    async def astart(self) -> "EmbeddedBroker":
        """:meth:`start` for async code: the process is spawned from the calling (loop) thread,
        the readiness wait runs in a worker thread so the loop keeps running."""
        if self.running:
            return self
        attempts = 3 if self._requested_port == 0 and self.port is None else 1
        for attempt in range(attempts):
            self._spawn()
            try:
                await asyncio.to_thread(self._wait_ready)
                return self
            except _PortTaken:
                self._kill()
                if attempt + 1 == attempts:
                    raise self._startup_error("its port is already in use") from None
                self.port = None
        return self  # pragma: no cover

    def _spawn_with_retries(self, wait: bool) -> None:
        if self.running:
            return
        attempts = 3 if self._requested_port == 0 and self.port is None else 1
        for attempt in range(attempts):
            self._spawn()
            if not wait:
                return
            try:
                self._wait_ready()
                return
            except _PortTaken:
                self._kill()
                if attempt + 1 == attempts:
                    raise self._startup_error("its port is already in use") from None
                self.port = None  # pick another free port

    def _spawn(self) -> None:
        if self._closed:
            raise BrokerError("this EmbeddedBroker was closed; create a new one")
        binary = self._binary or find_binary()
        data_dir = self.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        if self.port is None:
            self.port = free_port(self.host)
        elif not _port_is_bindable(self.host, self.port):
            raise self._startup_error(
                f"port {self.port} on {self.host} is already in use (another broker running? "
                "pick another --port or use port 0 for a free one)",
                with_log=False,
            )
        cmd = [
            str(binary),
            "start",
            "--only",
            "kafka",
            "--host",
            self.host,
            "--kafka-port",
            str(self.port),
            "--data-dir",
            str(data_dir),
        ]
        self._close_log()
        self._log_fh = open(self.log_path, "ab", buffering=0)
        self._log_fh.write(f"--- riskmon: starting {' '.join(cmd)}\n".encode())
        self._log_start = self._log_fh.tell()
        try:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=self._log_fh,
                stderr=subprocess.STDOUT,
                cwd=str(data_dir),
                start_new_session=True,  # Ctrl-C in a terminal goes to us; we stop the broker
                preexec_fn=_pdeathsig_setter() if self.kill_on_parent_exit else None,
            )
        except OSError as exc:
            self._close_log()
            raise BrokerError(f"cannot run the broker binary {binary}: {exc}") from None

    def _wait_ready(self) -> None:
        assert self._proc is not None and self.port is not None
        deadline = time.monotonic() + self.start_timeout
        last_error: Exception | None = None
        while True:
            code = self._proc.poll()
            if code is not None:
                self._proc = None
                self._close_log()
                log = self.log_tail()
                if "in use" in log.lower() and self._requested_port == 0:
                    raise _PortTaken()
                raise self._startup_error(f"it exited with code {code} during start-up")
            try:
                probe_kafka(self.host, self.port, timeout=2.0)
                return
            except (OSError, ConnectionError, struct.error) as exc:
                last_error = exc
            if time.monotonic() >= deadline:
                self._kill()
                raise self._startup_error(
                    f"it did not answer Kafka requests on {self.host}:{self.port} within "
                    f"{self.start_timeout:.0f} s (last error: {last_error})"
                )
            time.sleep(0.05)

    def _startup_error(self, why: str, with_log: bool = True) -> BrokerError:
        msg = f"the embedded Kafka broker (noida-db) failed to start on {self.host}:{self.port}: {why}"
        if with_log and self._data_dir is not None:
            msg += f"\n--- last lines of {self.log_path} ---\n{self.log_tail()}"
        return BrokerError(msg)

    def stop(self) -> None:
        """Stop the broker without losing acknowledged writes; data is kept.

        The broker's Kafka service is stopped first through its control channel (``noida-db
        stop kafka --data-dir DIR``: it closes client connections, then saves), then the process
        (``noida-db down``). Only when that fails does it get SIGTERM, then SIGKILL after
        ``stop_timeout``. noida-db 0.2.3 keeps answering, and acknowledging, produce requests
        while it saves on SIGTERM, SIGINT or a bare ``down``, and those records are missing
        after a restart; SIGKILL loses everything since its last periodic save (see
        ``tests/streams/test_broker_restart.py`` and ``docs/reliability.md``)."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None and not self._graceful_down(proc):
            try:
                proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self._kill()
        self._proc = None
        self._close_log()

    def _graceful_down(self, proc: "subprocess.Popen[bytes]") -> bool:
        """``noida-db stop kafka`` then ``noida-db down``; True once ``proc`` has exited.
        Only for a broker that announced its control channel in its data dir."""
        if self._data_dir is None:
            return False
        try:
            control = json.loads((self._data_dir / CONTROL_NAME).read_text())
        except (OSError, ValueError):
            return False
        if not isinstance(control, dict) or control.get("pid") != proc.pid:
            return False
        try:
            binary = str(self._binary or find_binary())
            for command in (["stop", "kafka"], ["down"]):
                subprocess.run(
                    [binary, *command, "--data-dir", str(self._data_dir)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    timeout=self.stop_timeout + 30,  # saving a large data dir takes a while
                    check=False,
                )
                if proc.poll() is not None:
                    break
            proc.wait(timeout=self.stop_timeout)
        except (OSError, BrokerError, subprocess.TimeoutExpired):
            return False
        return True

    def _kill(self) -> None:
        proc = self._proc
        if proc is not None:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
            self._proc = None
        self._close_log()

    def restart(self) -> None:
        """Stop and start again on the same port and data dir."""
        self.stop()
        deadline = time.monotonic() + 10
        # The old process released the port, but give the kernel a moment if it has not yet.
        while self.port is not None and not _port_is_bindable(self.host, self.port):
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.start()

    def close(self) -> None:
        """Stop the broker and remove the data dir if this object created it."""
        self.stop()
        if self._own_dir and self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)
            self._data_dir = None
        self._closed = True

    def _close_log(self) -> None:
        if self._log_fh is not None:
            with contextlib.suppress(OSError):
                self._log_fh.close()
            self._log_fh = None

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> "EmbeddedBroker":
        return await self.astart()

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.close)

    def __del__(self) -> None:  # best effort: never leave a broker behind
        try:
            if self._proc is not None and self._proc.poll() is None:
                self._proc.kill()
        except Exception:
            pass


class _PortTaken(Exception):
    pass


# --------------------------------------------------------------------------------------------
# settings-driven helpers
# --------------------------------------------------------------------------------------------


def embedded_from_settings(settings: "Settings") -> EmbeddedBroker:
    """An (unstarted) :class:`EmbeddedBroker` configured by ``settings.embedded_*``."""
    return EmbeddedBroker(
        settings.embedded_port,
        host=settings.embedded_host,
        data_dir=settings.embedded_data_dir,
    )


@contextlib.asynccontextmanager
async def broker_for(settings: "Settings") -> AsyncIterator[str]:
    """Yield bootstrap servers: ``settings.bootstrap_servers`` when set, otherwise those of an
    embedded broker started for the duration of the block (``settings.embedded_*``)."""
    if settings.bootstrap_servers:
        yield settings.bootstrap_servers
        return
    broker = embedded_from_settings(settings)
    await broker.astart()
    try:
        yield broker.bootstrap
    finally:
        await asyncio.to_thread(broker.close)


@contextlib.contextmanager
def broker_for_sync(settings: "Settings") -> Iterator[str]:
    """:func:`broker_for` for synchronous code."""
    if settings.bootstrap_servers:
        yield settings.bootstrap_servers
        return
    with embedded_from_settings(settings) as broker:
        yield broker.bootstrap


def _admin_kwargs(settings: "Settings", bootstrap: str | None) -> dict[str, Any]:
    kwargs = settings.kafka_client_kwargs()
    if bootstrap is not None:
        kwargs["bootstrap_servers"] = bootstrap
    if not kwargs.get("bootstrap_servers"):
        raise BrokerError(
            "no Kafka bootstrap servers: set RISKMON_BOOTSTRAP_SERVERS (or start an embedded broker)"
        )
    return kwargs


async def ensure_topics(
    settings: "Settings",
    names: Iterable[str],
    partitions: int | None = None,
    *,
    bootstrap: str | None = None,
    replication_factor: int | None = None,
    configs: Mapping[str, str] | None = None,
    check_partitions: bool = True,
    timeout: float = 30.0,
) -> list[str]:
    """Create the topics that do not exist yet; return the names created.

    ``partitions`` defaults to ``settings.partitions``; ``configs`` are topic configs such as
    ``{"cleanup.policy": "compact"}`` for new topics. With ``check_partitions`` (the default, for
    co-partitioned topics) an existing topic with another partition count is an error, because
    joining streams by firm needs the same partition count everywhere. Idempotent and safe to run
    concurrently from several processes.
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaError

    wanted = list(dict.fromkeys(names))
    if not wanted:
        return []
    partitions = int(partitions if partitions is not None else settings.partitions)
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, got {partitions}")
    replication = int(replication_factor or settings.replication_factor)
    kwargs = _admin_kwargs(settings, bootstrap)
    admin = AIOKafkaAdminClient(**kwargs, request_timeout_ms=int(timeout * 1000))
    created: list[str] = []
    try:
        try:
            await admin.start()
        except KafkaError as exc:
            raise BrokerError(
                f"cannot reach the Kafka broker at {kwargs['bootstrap_servers']}: {exc}"
            ) from None
        existing = await _partition_counts(admin, wanted)
        missing = [name for name in wanted if name not in existing]
        if missing:
            resp = await admin.create_topics(
                [
                    NewTopic(name, partitions, replication, topic_configs=dict(configs or {}))
                    for name in missing
                ],
                timeout_ms=int(timeout * 1000),
            )
            for name, code, message in _topic_errors(resp):
                if code == 0:
                    created.append(name)
                elif code != 36:  # 36 = TOPIC_ALREADY_EXISTS: created by someone else meanwhile
                    raise BrokerError(
                        f"cannot create topic {name!r} ({partitions} partitions, replication "
                        f"{replication}): error {code} {message or ''}".rstrip()
                    )
        # Wait until every topic has metadata with a leader for each partition.
        deadline = time.monotonic() + timeout
        while True:
            existing = await _partition_counts(admin, wanted, need_leaders=True)
            if all(name in existing for name in wanted):
                break
            if time.monotonic() > deadline:
                lacking = [n for n in wanted if n not in existing]
                raise BrokerError(f"topics {lacking} were created but have no leaders after {timeout:.0f} s")
            await asyncio.sleep(0.1)
        if check_partitions:
            wrong = {name: n for name, n in existing.items() if n != partitions}
            if wrong:
                desc = ", ".join(f"{name} has {n}" for name, n in sorted(wrong.items()))
                raise BrokerError(
                    f"topic partition counts differ from the requested {partitions}: {desc}. "
                    "Event topics must be co-partitioned: use the same partition count "
                    "(RISKMON_PARTITIONS / --partitions) as the existing topics, or delete them first."
                )
    finally:
        await admin.close()
    return created


def ensure_topics_sync(settings: "Settings", names: Iterable[str], partitions: int | None = None, **kw: Any) -> list[str]:
    """:func:`ensure_topics` for code without an event loop."""
    return asyncio.run(ensure_topics(settings, names, partitions, **kw))


async def _partition_counts(admin: Any, names: list[str], need_leaders: bool = False) -> dict[str, int]:
    # Metadata for *all* topics: asking for named topics would make a broker with
    # auto.create.topics.enable (noida-db has it) create missing ones with one partition.
    wanted = set(names)
    described = await admin.describe_topics()
    counts: dict[str, int] = {}
    for topic in described:
        if topic["topic"] not in wanted or topic.get("error_code", 0) != 0:
            continue  # 3 = UNKNOWN_TOPIC_OR_PARTITION
        parts = topic.get("partitions") or []
        if not parts:
            continue
        if need_leaders and any(p.get("leader", -1) < 0 or p.get("error_code", 0) for p in parts):
            continue
        counts[topic["topic"]] = len(parts)
    return counts


def _topic_errors(resp: Any) -> list[tuple[str, int, str | None]]:
    out = []
    for item in resp.topic_errors:
        name, code = item[0], item[1]
        message = item[2] if len(item) > 2 else None
        out.append((name, int(code), message))
    return out


# --------------------------------------------------------------------------------------------
# riskmon broker
# --------------------------------------------------------------------------------------------


def main(args: argparse.Namespace) -> int:
    """``riskmon broker --port 9092 [--data-dir DIR]``: run the broker until Ctrl-C or SIGTERM."""
    port = int(getattr(args, "port", 9092))
    data_dir = getattr(args, "data_dir", None)
    host = getattr(args, "host", None) or "127.0.0.1"
    broker = EmbeddedBroker(port, host=host, data_dir=data_dir)
    stop = threading.Event()

    def _on_signal(signum: int, frame: Any) -> None:
        stop.set()

    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            broker.start()
        except BrokerError as exc:
            print(f"riskmon broker: {exc}", file=sys.stderr)
            return 1
        where = f"data dir {broker.data_dir}" + (" (temporary, removed on exit)" if data_dir is None else "")
        print(f"Kafka broker ready: bootstrap {broker.bootstrap}", flush=True)
        print(f"  {where}; log {broker.log_path}", flush=True)
        print(f"  export RISKMON_BOOTSTRAP_SERVERS={broker.bootstrap}", flush=True)
        print("  press Ctrl-C to stop", flush=True)
        while not stop.wait(0.5):
            if not broker.running:
                print(
                    f"riskmon broker: the broker exited unexpectedly\n{broker.log_tail()}",
                    file=sys.stderr,
                )
                return 1
        print("stopping the broker...", file=sys.stderr, flush=True)
        return 0
    finally:
        broker.close()
        for s, handler in previous.items():
            signal.signal(s, handler)


__all__ = [
    "BrokerError",
    "EmbeddedBroker",
    "broker_for",
    "broker_for_sync",
    "embedded_from_settings",
    "ensure_topics",
    "ensure_topics_sync",
    "find_binary",
    "free_port",
    "main",
    "probe_kafka",
]

