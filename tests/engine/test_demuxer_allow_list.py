"""Inputs are opened only as the video containers xp-sdk reads. FFmpeg otherwise picks a demuxer from the bytes, and
some read other files named inside the input: an uploaded HLS playlist or ffconcat script made the reader open a
video of the attacker's choosing on the server (tried: it decoded the referenced clip's 16 frames), and a text file
was taken for a 5-frame 'tty' video."""

from __future__ import annotations

from pathlib import Path

import pytest

from watermark import WatermarkKey, detect_watermark
from watermark.errors import UnreadableVideoError as WatermarkUnreadable
from xp_sdk.engine.video import probe_video, read_frames
from xp_sdk.errors import UnreadableVideoError


def _inputs(tmp_path: Path, faces: Path) -> dict[str, Path]:
    target = faces / "driving" / "lp_d1_hist.mp4"
    playlist = tmp_path / "clip.m3u8"
    playlist.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{target}\n#EXT-X-ENDLIST\n")
    concat = tmp_path / "clip.mp4"
    concat.write_text(f"ffconcat version 1.0\nfile '{target}'\n")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 40)
    return {"hls": playlist, "ffconcat": concat, "text": text}


@pytest.mark.parametrize("kind", ["hls", "ffconcat", "text"])
def test_the_engine_opens_no_input_that_names_other_files(tmp_path: Path, faces: Path, kind: str) -> None:
    path = _inputs(tmp_path, faces)[kind]
    with pytest.raises(UnreadableVideoError):
        probe_video(path)
    with pytest.raises(UnreadableVideoError):
        next(iter(read_frames(path)))


@pytest.mark.parametrize("kind", ["hls", "ffconcat", "text"])
def test_the_watermark_reader_opens_no_input_that_names_other_files(tmp_path: Path, faces: Path, kind: str) -> None:
    path = _inputs(tmp_path, faces)[kind]
    with pytest.raises(WatermarkUnreadable):
        detect_watermark(path, WatermarkKey.generate())


def test_real_containers_still_open(faces: Path) -> None:
    assert probe_video(faces / "driving" / "lp_d1_hist.mp4").container.startswith("mov,mp4")
    assert probe_video(faces / "driving" / "grid_bbaf2n.mpg").container == "mpeg"
