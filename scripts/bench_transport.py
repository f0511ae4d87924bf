"""What one gateway connection and one gateway request cost the exporter, over TLS.

Starts a TLS stand-in gateway (self-signed certificate, needs the openssl command) in a separate
process, then in this process makes GATEWAYS transports (one per gateway, as the exporter does),
each opening its keep-alive connection with one /info request, then ROUNDS more requests each on
the open connections. Prints the CPU (user + system, of this process only) and the memory
(VmRSS growth, VmHWM) per new TLS connection and per request.

    python scripts/bench_transport.py [--gateways 100] [--rounds 20]

Run it against another checkout with PYTHONPATH=<checkout> to compare.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import ssl
import subprocess
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

BODY = (
    b"<?xml version='1.0' encoding='UTF-8'?><envoy_info><time>1750000000</time><device>"
    b"<sn>122302045041</sn><pn>800-00654-r08</pn><software>D7.6.175</software><imeter>false</imeter>"
    b"</device><web-tokens>true</web-tokens></envoy_info>"
)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else headers and body, two writes, wait on a delayed ACK

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


def _serve(directory: str, ready: multiprocessing.Queue) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(Path(directory) / "cert.pem", Path(directory) / "key.pem")
    server = _Server(("127.0.0.1", 0), _Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    ready.put(server.server_address[1])
    server.serve_forever()


class _NoAuth:
    scheme = "none"

    def prepare(self, endpoint_key):
        return {}

    def refresh(self, session, base_url):
        pass

    def on_unauthorized(self, session, base_url):
        return False


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _status(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateways", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()

    from envoy_exporter.config.settings import GatewaySettings
    from envoy_exporter.gateway.net.transport import Transport

    directory = tempfile.mkdtemp(prefix="bench-transport-")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=envoy",
         "-keyout", f"{directory}/key.pem", "-out", f"{directory}/cert.pem"],
        check=True, capture_output=True,
    )  # fmt: skip
    ready: multiprocessing.Queue = multiprocessing.Queue()
    server = multiprocessing.Process(target=_serve, args=(directory, ready), daemon=True)
    server.start()
    port = ready.get(timeout=30)
    try:
        transports = [
            Transport(
                GatewaySettings(name=f"gw{n}", host=f"https://127.0.0.1:{port}", timeout=10.0),
                _NoAuth(),  # type: ignore[arg-type]
                lambda endpoint, code: None,
            )
            for n in range(args.gateways)
        ]
        rss0, cpu0, wall0 = _status("VmRSS"), _cpu(), time.monotonic()
        for transport in transports:
            transport.get("info", "/info")
        rss1, cpu1, wall1 = _status("VmRSS"), _cpu(), time.monotonic()
        for _ in range(args.rounds):
            for transport in transports:
                transport.get("info", "/info")
        cpu2, wall2 = _cpu(), time.monotonic()
        requests = args.rounds * args.gateways
        print(f"gateways {args.gateways}, TLS connections {args.gateways}, keep-alive requests {requests}")
        print(f"per new TLS connection: {1000 * (cpu1 - cpu0) / args.gateways:.2f} ms CPU, "
              f"{1024 * (rss1 - rss0) / args.gateways:.0f} kB RSS kept")  # fmt: skip
        print(f"per keep-alive request: {1000 * (cpu2 - cpu1) / requests:.3f} ms CPU "
              f"({1000 * (wall2 - wall1) / requests:.3f} ms wall)")  # fmt: skip
        print(f"RSS {_status('VmRSS'):.1f} MB, peak {_status('VmHWM'):.1f} MB; "
              f"first pass {wall1 - wall0:.2f} s wall")  # fmt: skip
        for transport in transports:
            transport.close()
    finally:
        server.terminate()
        server.join(5)


if __name__ == "__main__":
    main()
