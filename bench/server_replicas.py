"""Scale-out of `xp serve`: verify and audit-query throughput and p50/p99 latency against one and two replicas.

    .venv/bin/python bench/server_replicas.py                       # a few minutes on 2 cores
    .venv/bin/python bench/server_replicas.py --verify 40 --audit 400 --concurrency 8

Two `xp serve` processes (subprocesses, one uvicorn each, one job worker each) on loopback share a fresh
PostgreSQL schema, one home and one Redis (keys under a prefix of this run, deleted at the end). One clip is
generated first (through replica 1) to be verified. Then, for each target set (replica 1 alone; both, requests
alternating), a bounded load loop of `--concurrency` threads sends `--verify` verifications (upload, watermark
and C2PA check, ledger lookup) and `--audit` audit queries (`GET /v1/audit/events?limit=20`), each with a key
without a rate limit (the per-address limit is off for the run). Latency is per request, wall clock on the
client; throughput is successful requests over the phase's wall time.

Both replicas share the machine's cores with each other and with the client, so on a small machine two replicas
show what sharing Redis and PostgreSQL costs, not what a second machine would add.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import cycle
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.postgres import postgres_schema  # noqa: E402
from xp_sdk import Client, init_deployment  # noqa: E402
from xp_sdk.server.redis_jobs import clear  # noqa: E402

REDIS_URL = os.environ.get("XP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
FACES = Path(os.environ.get("XP_FACES", REPO.parent / "shared" / "faces"))

_SERVE = """
import sys
from xp_sdk.server.limits import Limits
from xp_sdk.server.serve import serve
home, port, redis_url = sys.argv[1:4]
serve(port=int(port), home=home, redis_url=redis_url, log_level="warning",
      limits=Limits(requests_per_minute_per_client=0))
"""


@dataclass
class Row:
    replicas: int
    operation: str
    latencies_s: list[float] = field(default_factory=list)
    errors: int = 0
    wall_s: float = 0.0

    def quantile(self, q: float) -> float:
        """Nearest rank: with fewer than 100 samples p99 is the slowest request."""
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.999999) - 1))] if ordered else 0.0

    def cells(self) -> list[str]:
        rate = len(self.latencies_s) / self.wall_s if self.wall_s else 0.0
        return [
            str(self.replicas), self.operation, str(len(self.latencies_s)), str(self.errors), f"{rate:.1f}",
            f"{self.quantile(0.5) * 1000:.0f}", f"{self.quantile(0.99) * 1000:.0f}",
        ]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def replicas(home: Path, prefix: str, count: int, logs: Path) -> Iterator[list[str]]:
    env = {**os.environ, "XP_REDIS_PREFIX": prefix}
    started: list[tuple[subprocess.Popen[bytes], str]] = []
    try:
        for n in range(count):
            port = _free_port()
            with (logs / f"replica-{n}.log").open("wb") as log:
                process = subprocess.Popen(
                    [sys.executable, "-c", _SERVE, str(home), str(port), REDIS_URL], cwd=REPO, stdout=log,
                    stderr=subprocess.STDOUT, env=env,
                )  # fmt: skip
            started.append((process, f"http://127.0.0.1:{port}"))
        for process, url in started:
            _wait_up(process, url)
        yield [url for _, url in started]
    finally:
        for process, _ in started:
            process.send_signal(signal.SIGINT)
        for process, _ in started:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait_up(process: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"a replica exited at start-up (code {process.returncode})")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not start")


def load(
    urls: list[str], key: str, operation: str, requests: int, concurrency: int, send: Callable[[httpx.Client], int]
) -> Row:
    row = Row(len(urls), operation)
    lock = threading.Lock()
    targets = cycle(urls)
    clients = {url: httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120) for url in urls}

    def one(_: int) -> None:
        with lock:
            http = clients[next(targets)]
        began = time.perf_counter()
        try:
            status = send(http)
        except httpx.HTTPError:
            status = 0
        elapsed = time.perf_counter() - began
        with lock:
            if status == 200:
                row.latencies_s.append(elapsed)
            else:
                row.errors += 1

    began = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(requests)))
    row.wall_s = time.perf_counter() - began
    for http in clients.values():
        http.close()
    return row


def print_table(rows: list[Row]) -> None:
    header = ["replicas", "operation", "ok", "errors", "req/s", "p50 ms", "p99 ms"]
    table = [header, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for n, line in enumerate(table):
        print(
            "  ".join(
                cell.rjust(width) if i > 1 else cell.ljust(width)
                for i, (cell, width) in enumerate(zip(line, widths, strict=True))
            )
        )
        if n == 0:
            print("  ".join("-" * width for width in widths))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--verify", type=int, default=24, help="verifications per target set")
    parser.add_argument("--audit", type=int, default=300, help="audit queries per target set")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    photo, clip = FACES / "source" / "skimage_astronaut.png", FACES / "driving" / "lp_d1_hist.mp4"
    if not clip.is_file():
        print(f"needs the test faces under {FACES}", file=sys.stderr)
        return 2
    prefix = f"xp-bench-{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory() as tmp, postgres_schema("xp_bench") as database_url:
        root = Path(tmp)
        init = init_deployment(root / "home", tenant="bench", database_url=database_url)
        try:
            with replicas(init.home, prefix, 2, root) as urls:
                with Client(init.api_key.secret, base_url=urls[0]) as admin:
                    key = admin.keys.create(
                        scopes="animate verify audit:read subjects:write consents:write", name="bench",
                        rate_limit_per_minute=0,
                    ).secret  # fmt: skip
                with Client(key, base_url=urls[0]) as client:
                    subject = client.subjects.register("Bench subject", [photo]).id
                    client.consents.grant(subject, evidence=b"consents to the load test")
                    generated = root / "verify-me.mp4"
                    client.animate(photo, subject=subject, out=generated, driving=clip)
                video = generated.read_bytes()

                def verify(http: httpx.Client) -> int:
                    files = {"video": ("verify-me.mp4", video, "video/mp4")}
                    return http.post("/v1/verifications", files=files).status_code

                def audit(http: httpx.Client) -> int:
                    return http.get("/v1/audit/events", params={"limit": 20}).status_code

                rows = []
                for targets in (urls[:1], urls):
                    rows.append(load(targets, key, "audit query", args.audit, args.concurrency, audit))
                    rows.append(load(targets, key, "verify", args.verify, args.concurrency, verify))
        finally:
            clear(REDIS_URL, prefix)
    print(f"xp serve on loopback, {os.cpu_count()} cores, concurrency {args.concurrency}, PostgreSQL + Redis")
    print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
