"""Load test of `xp serve` on loopback: concurrent verify and animate requests, throughput and p50/p99 latency.

    .venv/bin/python bench/server.py                                   # about a minute on 2 cores
    .venv/bin/python bench/server.py --verify 60 --animate 8 --concurrency 4 --json out/bench/server.json

Starts its own server (a fresh home in a temporary folder, the app on a free loopback port, in this process)
and drives it with the remote client, as a caller would: each animate uploads a photo and a 16-frame driving
clip, follows its job and downloads the signed output; each verify uploads a generated clip. Three phases:
verify alone, animate alone, then both at once. Every phase is bounded by a request count and by --time-limit
(no request starts after it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from xp_sdk import Client, init_deployment  # noqa: E402
from xp_sdk.config import Settings  # noqa: E402
from xp_sdk.server.app import create_app  # noqa: E402
from xp_sdk.server.limits import Limits  # noqa: E402
from xp_sdk.server.serve import BackgroundServer  # noqa: E402
from xp_sdk.verification import full_report  # noqa: E402


@dataclass
class Row:
    phase: str
    operation: str
    concurrency: int
    requests: int = 0
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list, repr=False)

    @property
    def throughput(self) -> float:
        return self.ok / self.wall_s if self.wall_s else 0.0

    def quantile(self, q: float) -> float | None:
        """Nearest-rank quantile: with fewer than 100 samples p99 is the slowest request."""
        if not self.latencies_s:
            return None
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.999999) - 1))]

    def summary(self) -> dict[str, object]:
        data = {k: v for k, v in asdict(self).items() if k != "latencies_s"}
        data.update(
            throughput_per_s=round(self.throughput, 3),
            p50_s=_round(self.quantile(0.50)),
            p99_s=_round(self.quantile(0.99)),
            mean_s=_round(statistics.fmean(self.latencies_s) if self.latencies_s else None),
        )
        return data


def _round(value: float | None) -> float | None:
    return round(value, 3) if value is not None else None


class World:
    """A fresh deployment with a consenting subject, a key without a rate limit, and one clip to verify."""

    def __init__(self, root: Path, url: str, admin_key: str, faces: Path | None) -> None:
        self.root = root
        with Client(admin_key, base_url=url) as admin:
            self.key = admin.keys.create(
                scopes="animate verify audit:read", name="bench", rate_limit_per_minute=0
            ).secret
            self.photo, self.driving, self.template = _inputs(root, faces)
            self.subject = admin.subjects.register("Bench subject", [self.photo]).id
            admin.consents.grant(self.subject, evidence=b"consents to the load test")
        self.client = Client(self.key, base_url=url, max_retries=0)
        self.clip = root / "verify-me.mp4"
        self.animate(self.clip)
        self._count = 0
        self._lock = threading.Lock()

    def animate(self, out: Path | None = None) -> None:
        if out is None:
            with self._lock:
                self._count += 1
                out = self.root / f"out-{self._count}.mp4"
        self.client.animate(self.photo, subject=self.subject, out=out, driving=self.driving, template=self.template)
        if out != self.clip:
            out.unlink()

    def verify(self) -> None:
        report = full_report(self.client.verify(self.clip))
        assert report.watermark.detected and report.generation is not None

    def close(self) -> None:
        self.client.close()


def _inputs(root: Path, faces: Path | None) -> tuple[Path, Path | None, str | None]:
    if faces is not None and (faces / "driving" / "lp_d1_hist.mp4").is_file():
        return faces / "source" / "skimage_astronaut.png", faces / "driving" / "lp_d1_hist.mp4", None
    from PIL import Image
    from skimage import data

    photo = root / "astronaut.png"
    Image.fromarray(data.astronaut()).save(photo)
    return photo, None, "smile"


def run_phase(phase: str, work: list[tuple[str, Callable[[], None]]], concurrency: int, deadline: float) -> list[Row]:
    rows = {name: Row(phase, name, concurrency) for name, _ in work}
    lock = threading.Lock()

    def one(name: str, call: Callable[[], None]) -> None:
        if time.monotonic() > deadline:
            return
        started = time.perf_counter()
        try:
            call()
            failed = None
        except Exception as exc:
            failed = type(exc).__name__
        elapsed = time.perf_counter() - started
        with lock:
            row = rows[name]
            row.requests += 1
            if failed is None:
                row.ok += 1
                row.latencies_s.append(elapsed)
            else:
                row.errors[failed] = row.errors.get(failed, 0) + 1

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for future in [pool.submit(one, name, call) for name, call in work]:
            future.result()
    wall = time.perf_counter() - started
    for row in rows.values():
        row.wall_s = round(wall, 3)
    return list(rows.values())


def interleave(verify: int, animate: int, world: World) -> list[tuple[str, Callable[[], None]]]:
    """Requests in a fair order: an animate after every verify/animate-ratio verifies."""
    work: list[tuple[str, Callable[[], None]]] = []
    every = max(1, verify // max(1, animate))
    made = 0
    for n in range(verify):
        work.append(("verify", world.verify))
        if (n + 1) % every == 0 and made < animate:
            work.append(("animate", world.animate))
            made += 1
    work.extend(("animate", world.animate) for _ in range(animate - made))
    return work


def print_table(rows: list[Row], header: str) -> None:
    print(header)
    columns = ("phase", "operation", "conc", "requests", "ok", "errors", "wall s", "req/s", "p50 s", "p99 s")
    lines = [columns]
    for r in rows:
        s = r.summary()
        errors = ",".join(f"{k}×{v}" for k, v in r.errors.items()) or "0"
        lines.append((
            r.phase, r.operation, str(r.concurrency), str(r.requests), str(r.ok), errors, f"{r.wall_s:.1f}",
            f"{r.throughput:.2f}", _fmt(s["p50_s"]), _fmt(s["p99_s"]),
        ))  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]
    for index, line in enumerate(lines):
        print(
            "  ".join(
                cell.ljust(width) if i < 2 else cell.rjust(width)
                for i, (cell, width) in enumerate(zip(line, widths, strict=True))
            )
        )
        if index == 0:
            print("  ".join("-" * w for w in widths))


def _fmt(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else "–"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--verify", type=int, default=40, help="verify requests per phase (default 40)")
    parser.add_argument("--animate", type=int, default=6, help="animate requests per phase (default 6)")
    parser.add_argument("--concurrency", type=int, default=4, help="client threads (default 4)")
    parser.add_argument("--workers", type=int, default=2, help="animations the server runs at once (default 2)")
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per phase; no request starts after")
    parser.add_argument(
        "--json", nargs="?", const="-", metavar="PATH", help="print JSON, not the table; with PATH, write it there too"
    )
    args = parser.parse_args()
    faces = Path(os.environ.get("XP_FACES", REPO.parent / "shared" / "faces"))

    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="xp-bench-server-") as folder:
        init = init_deployment(Path(folder) / "home", tenant="bench")
        # Loopback load comes from one address: a per-address limit would measure itself, not the server.
        limits = Limits(requests_per_minute_per_client=0)
        app = create_app(Settings.resolve(home=init.home), workers=args.workers, limits=limits)
        with BackgroundServer(app) as server:
            world = World(Path(folder), server.url, init.api_key.secret, faces if faces.is_dir() else None)
            try:
                rows: list[Row] = []
                phases = (
                    ("verify", [("verify", world.verify)] * args.verify),
                    ("animate", [("animate", world.animate)] * args.animate),
                    ("mixed", interleave(args.verify, args.animate, world)),
                )
                for phase, work in phases:
                    rows += run_phase(phase, work, args.concurrency, time.monotonic() + args.time_limit)
            finally:
                world.close()
    header = (
        f"xp serve on loopback: {os.cpu_count()} cores, server workers {args.workers}, client concurrency "
        f"{args.concurrency}, input {'16-frame clip' if world.driving else 'smile template'}; "
        f"load average {load:.2f} at start, {os.getloadavg()[0]:.2f} at end"
    )
    report = json.dumps({"header": header, "rows": [r.summary() for r in rows]}, indent=2)
    if args.json == "-":
        print(report)
    else:
        print_table(rows, header)
    if args.json not in (None, "-"):
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(report + "\n")
    return 0 if all(not r.errors for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
