"""bench/diffusion_gpu.py --random-weights runs on the CPU at a tiny size, so the GPU bench cannot rot unseen.

It goes the whole way the GPU run goes: random weights written in the published layout and pinned in a
models.toml, loaded through it, the real animate() on a driving clip (or the talk template without the shared
faces), and one table printed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_the_gpu_bench_runs_with_random_weights_on_the_cpu(tmp_path: Path) -> None:
    command = [
        sys.executable, str(REPO / "bench" / "diffusion_gpu.py"), "--random-weights", "--tiny", "--device", "cpu",
        "--frames", "5", "--resolution", "32", "--steps", "1", "--window", "4", "--overlap", "1",
        "--out", str(tmp_path / "out"), "--json", str(tmp_path / "table.json"),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    table = json.loads((tmp_path / "table.json").read_text())
    for row in ("load_s", "first_window_latency_s", "steady_fps", "phase_seconds", "peak_host_rss_gib", "versions",
                "weights_sha256", "stage_seconds"):
        assert row in table, row
        assert row in done.stdout  # the one printed table has every row
    assert table["frames"] == 5 and table["temporal"] is True
    assert set(table["weights_sha256"]) == {"unet", "vae", "controlnet", "motion_adapter", "lcm_lora", "prompt_embeds"}
    assert set(table["phase_seconds"]) == {"vae_encode", "reference", "controlnet", "unet", "scheduler", "vae_decode"}
    assert table["versions"]["diffusers"] != "not installed"
    assert (tmp_path / "out" / "diffusion.mp4").is_file()
