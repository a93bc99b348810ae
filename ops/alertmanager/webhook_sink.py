"""A minimal Alertmanager webhook receiver: logs every notification as one JSON line.

Standard library only, so it runs in any Python image (the compose stack runs it in the riskmon
image as the ``alert-sink`` service). ``POST /alerts`` with Alertmanager's webhook payload
prints ``{"received": ..., "status": ..., "alerts": [{"alertname", "status", "labels"...}]}``
to stdout and, with ``--out FILE``, appends the raw payload to FILE. ``GET /`` answers 200
(health check).

    python ops/alertmanager/webhook_sink.py --host 0.0.0.0 --port 8080 [--out alerts.jsonl]
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_BODY = 4 * 1024 * 1024


def summarize(payload: dict[str, Any]) -> dict[str, Any]:
    """The fields an operator reads in a log line."""
    return {
        "received": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "receiver": payload.get("receiver"),
        "status": payload.get("status"),
        "alerts": [
            {
                "alertname": a.get("labels", {}).get("alertname"),
                "status": a.get("status"),
                "severity": a.get("labels", {}).get("severity"),
                "labels": a.get("labels", {}),
                "summary": a.get("annotations", {}).get("summary"),
                "startsAt": a.get("startsAt"),
            }
            for a in payload.get("alerts", [])
        ],
    }


def make_handler(out_path: str | None, lock: threading.Lock) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server API
            self._reply(200, b"ok\n")

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            if length <= 0 or length > MAX_BODY:
                self._reply(400, b"expected a JSON body\n")
                return
            body = self.rfile.read(length)
            try:
                payload = json.loads(body)
                line = json.dumps(summarize(payload), ensure_ascii=False)
            except (ValueError, AttributeError) as exc:
                self._reply(400, f"bad payload: {exc}\n".encode())
                return
            with lock:
                print(line, flush=True)
                if out_path:
                    with open(out_path, "ab") as fh:
                        fh.write(json.dumps(payload).encode() + b"\n")
            self._reply(200, b"ok\n")

        def _reply(self, code: int, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # quiet access log
            pass

    return Handler


def make_server(host: str, port: int, out_path: str | None = None) -> ThreadingHTTPServer:
    return ThreadingHTTPServer((host, port), make_handler(out_path, threading.Lock()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--out", help="append each raw payload to this JSON-lines file")
    args = parser.parse_args(argv)
    server = make_server(args.host, args.port, args.out)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"alert sink listening on http://{args.host}:{server.server_port}/alerts", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
