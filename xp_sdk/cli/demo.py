"""The demo: needs no external file. The astronaut portrait ships with scikit-image; the motion is the
project's own showcase template."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from xp_sdk.engine import AnimateOptions
from xp_sdk.engine.video import read_frames
from xp_sdk.errors import InvalidInputError


def astronaut() -> np.ndarray:
    try:
        from skimage import data
    except ImportError as exc:
        raise InvalidInputError("the demo needs scikit-image: pip install 'xp-sdk[demo]'") from exc
    return np.ascontiguousarray(data.astronaut())  # type: ignore[no-untyped-call]


def contact_sheet(video: Path, out: Path, *, tiles: int = 10, columns: int = 5, height: int = 256) -> Path:
    """Evenly spaced frames of ``video`` in a grid, for looking at what was made."""
    frames = list(read_frames(video, max_side=height * 2))
    picks = np.linspace(0, len(frames) - 1, tiles).astype(int)
    cells = []
    for i in picks:
        f = frames[i]
        cell = cv2.resize(f, (round(f.shape[1] * height / f.shape[0]), height), interpolation=cv2.INTER_AREA)
        cv2.putText(cell, f"{i}", (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 0), 2, cv2.LINE_AA)
        cells.append(cell)
    rows = [np.hstack(cells[r : r + columns]) for r in range(0, len(cells), columns)]
    cv2.imwrite(str(out), cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR))
    return out


def run_demo(folder: Path, *, show_progress: bool = True, home: Path | None = None) -> dict[str, Any]:
    """Animate the astronaut with the showcase template, watermarked and signed, then verify the result.

    The demo keeps its own home (keys) inside ``folder`` unless one is given, so it never touches a real
    deployment's keys.
    """
    from xp_sdk.cli import _progress
    from xp_sdk.errors import NotInitializedError
    from xp_sdk.generate import generate
    from xp_sdk.home import Home
    from xp_sdk.provenance import init_provenance_keys, load_provenance_keys
    from xp_sdk.verify import verify

    folder.mkdir(parents=True, exist_ok=True)
    demo_home = Home.resolve(home if home is not None else folder / "home")
    try:
        keys = load_provenance_keys(demo_home)
    except NotInitializedError:
        keys = init_provenance_keys(demo_home, organization="xp-sdk demo")
    photo = astronaut()
    source = folder / "astronaut.png"
    cv2.imwrite(str(source), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    video = folder / "astronaut_showcase.mp4"
    with _progress(show_progress, "demo") as progress:
        generation = generate(
            source, video, keys=keys, template="showcase", options=AnimateOptions(), progress=progress
        )
    result = generation.animation
    sheet = contact_sheet(video, folder / "astronaut_showcase_sheet.png")
    verdict = verify(video, keys=keys)
    return {
        "video": str(generation.output),
        "contact_sheet": str(sheet),
        "source": str(source),
        "frames": result.frames,
        "size": f"{result.width}x{result.height}",
        "fps_end_to_end": round(result.frames / max(result.seconds, 1e-9), 1),
        "generation_id": generation.generation_id,
        "c2pa": verdict.c2pa.state.value,
        "watermark": f"detected {verdict.watermark.payload}, p = {verdict.watermark.p_value:.1e}"
        if verdict.watermark.detected
        else "not detected",
        "home": str(demo_home.root),
    }
