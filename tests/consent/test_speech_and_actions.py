"""The consent checks' readers on real clips: the sentence a GRID speaker says, the actions a LivePortrait driving
clip performs (labelled from its manifest description: lp_d7 blinks and raises her brows; lp_d18 opens his jaw
wide), and a clip played twice read as a loop."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tests.conftest import write_shown_clip
from xp_sdk.consent import speech
from xp_sdk.consent.challenge import FacialAction, grid_grammar
from xp_sdk.consent.liveness import detect_actions, judge_liveness
from xp_sdk.consent.observe import observe_video
from xp_sdk.engine.identity import IdentityEmbedder
from xp_sdk.engine.video import read_frames
from xp_sdk.errors import ModelHashMismatchError

A = FacialAction


def test_the_grid_speaker_is_read_word_for_word(faces: Path) -> None:
    heard = speech.transcribe(faces / "driving" / "grid_bbaf2n.mpg")
    assert heard.words == ("bin", "blue", "at", "f", "two", "now")  # the manifest's sentence
    assert heard.starts_at is not None and 0.5 < heard.starts_at < 1.5


def test_a_clip_without_speech_says_nothing(faces: Path) -> None:
    assert speech.transcribe(faces / "driving" / "lp_d7_hist.mp4").words == ()


def test_the_grammar_is_one_grid_sentence() -> None:
    assert grid_grammar().count("public") == 1 and "<slot5>" in grid_grammar()


def test_a_speech_model_file_that_is_not_the_pinned_one_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(speech.PINNED_SPEECH_FILES, "en-us/en-us/means", "0" * 64)
    speech._verified.clear()
    with pytest.raises(ModelHashMismatchError, match="means"):
        speech.speech_model_dir()


@pytest.fixture(scope="module")
def embedder() -> IdentityEmbedder:
    return IdentityEmbedder()


def test_blinks_and_raised_brows_are_seen_in_order(faces: Path, embedder: IdentityEmbedder) -> None:
    seen = observe_video(faces / "driving" / "lp_d7_hist.mp4", embedder)
    performed = [e.action for e in detect_actions(seen.frames)]
    assert A.BLINK_TWICE in performed and A.RAISE_BROWS in performed
    assert performed.index(A.BLINK_TWICE) < performed.index(A.RAISE_BROWS)
    assert A.TURN_LEFT not in performed and A.TURN_RIGHT not in performed
    assert judge_liveness(seen, (A.BLINK_TWICE, A.RAISE_BROWS), actions_until=None).passed
    assert not judge_liveness(seen, (A.RAISE_BROWS, A.BLINK_TWICE), actions_until=None).passed


def test_a_wide_open_jaw_is_seen(faces: Path, embedder: IdentityEmbedder) -> None:
    seen = observe_video(faces / "driving" / "lp_d18.mp4", embedder)
    assert A.OPEN_MOUTH in [e.action for e in detect_actions(seen.frames)]


def test_a_clip_played_twice_is_a_loop(faces: Path, embedder: IdentityEmbedder, tmp_path: Path) -> None:
    once = list(itertools.islice(read_frames(faces / "driving" / "lp_d7_hist.mp4"), 90))
    looped = write_shown_clip(tmp_path / "twice.mp4", once + once, rate=30)
    result = judge_liveness(observe_video(looped, embedder), (A.BLINK_TWICE,), actions_until=None)
    assert any("looped" in p for p in result.problems), result.problems
    played_once = write_shown_clip(tmp_path / "once.mp4", once, rate=30)
    assert not any(
        "looped" in p for p in judge_liveness(observe_video(played_once, embedder), (), actions_until=None).problems
    )
