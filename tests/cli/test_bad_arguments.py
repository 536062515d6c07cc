"""Absurd values for the options of `xp` commands: the typed error's exit code and one `error: …` line naming the
option, never exit 1 ("unexpected …, this is a bug"), and nothing written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.cli.helpers import assert_error, xp
from xp_sdk.cli.common import parse_duration, parse_time

# Each case: the extra arguments of `xp animate`, and a word the error line must hold.
ANIMATE_CASES: dict[str, tuple[list[str], str]] = {
    "--max-side 0": (["--max-side", "0"], "max_side"),
    "--max-side -5": (["--max-side", "-5"], "max_side"),
    "--max-side 10^20": (["--max-side", "100000000000000000000"], "max_side"),
    "--expression-scale nan": (["--expression-scale", "nan"], "expression_scale"),
    "--expression-scale inf": (["--expression-scale", "inf"], "expression_scale"),
    "--expression-scale -1e308": (["--expression-scale", "-1e308"], "expression_scale"),
    "--pose-scale -inf": (["--pose-scale", "-inf"], "pose_scale"),
    "--pose-scale nan": (["--pose-scale", "nan"], "pose_scale"),
    "--reference-frame -1": (["--reference-frame", "-1"], "reference_frame"),
    "--reference-frame 10^23": (["--reference-frame", "100000000000000000000000"], "reference_frame"),
    "--steps 100000": (["--steps", "100000"], "steps"),
    "--device ../x": (["--device", "../x"], "device"),
}


@pytest.mark.parametrize("case", list(ANIMATE_CASES))
def test_absurd_animate_option_is_an_input_error(case: str, astronaut_photo: Path, tmp_path: Path) -> None:
    extra, word = ANIMATE_CASES[case]
    out = tmp_path / "clip.mp4"
    result = xp(
        "animate", "--source", astronaut_photo, "--subject", "sub_0000000000000000", "--template", "blink",
        "--out", out, "--home", tmp_path / "home", "--api-key", "xp_000000000000_" + "A" * 43, *extra,
    )  # fmt: skip
    assert_error(result, 2, word)
    assert list(tmp_path.iterdir()) == []


# Each case: the command line, the exit code, and a word the error line must hold. Values are refused where the
# CLI parses them, before a client opens, so the home does not exist (a value let through would exit 7).
KEY = ["keys", "create", "--scope", "animate"]
GRANT = ["consents", "grant", "--subject", "sub_0000000000000000", "--evidence", "x.txt"]
PARSED_CASES: dict[str, tuple[list[str], int, str]] = {
    "keys --expires 99999999999d": ([*KEY, "--expires", "99999999999d"], 2, "--expires"),
    "keys --expires 10^22w": ([*KEY, "--expires", "9999999999999999999999w"], 2, "--expires"),
    "keys --expires 5000 digits": ([*KEY, "--expires", "9" * 5000 + "d"], 2, "--expires"),
    "keys --expires 36501d": ([*KEY, "--expires", "36501d"], 2, "--expires"),
    "keys --expires year 9999": ([*KEY, "--expires", "9999-12-31T23:59:59"], 2, "--expires"),
    "keys --expires arabic digits": ([*KEY, "--expires", "\u0663d"], 2, "--expires"),
    "keys --rate-limit 10^23": ([*KEY, "--rate-limit", "1" + "0" * 23], 2, "--rate-limit"),
    "keys --rate-limit over int32": ([*KEY, "--rate-limit", "2147483648"], 2, "--rate-limit"),
    "keys --rate-limit -1": ([*KEY, "--rate-limit", "-1"], 2, "--rate-limit"),
    "consents --expires 99999999999d": ([*GRANT, "--expires", "99999999999d"], 2, "--expires"),
    "audit query --since 99999999999d": (["audit", "query", "--since", "99999999999d"], 2, "--since"),
    "audit query --until 99999999999w": (["audit", "query", "--until", "99999999999w"], 2, "--until"),
    "audit query --since year 1": (["audit", "query", "--since", "0001-01-01T00:00"], 2, "--since"),
    "audit query --until year 9999": (["audit", "query", "--until", "9999-01-01"], 2, "--until"),
    "audit abandoned --older-than 99999999999d": (["audit", "abandoned", "--older-than", "99999999999d"], 2,
                                                  "--older-than"),
    "audit abandoned --older-than 10^20w": (["audit", "abandoned", "--older-than", "1" + "0" * 20 + "w"], 2,
                                            "--older-than"),
    "serve --port 999999": (["serve", "--port", "999999"], 2, "--port"),
    "serve --port -1": (["serve", "--port", "-1"], 2, "--port"),
    "serve --workers 10^12": (["serve", "--workers", "1" + "0" * 12], 2, "--workers"),
    "serve --gpus-per-worker inf": (["serve", "--gpus-per-worker", "inf"], 2, "--gpus-per-worker"),
    "serve --gpus-per-worker nan": (["serve", "--gpus-per-worker", "nan"], 2, "--gpus-per-worker"),
    "serve --close-abandoned-after 10^20": (["serve", "--close-abandoned-after", "1" + "0" * 20], 2,
                                            "--close-abandoned-after"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(PARSED_CASES))
def test_absurd_value_is_refused_where_it_is_parsed(case: str, tmp_path: Path) -> None:
    arguments, exit_code, word = PARSED_CASES[case]
    key = [] if arguments[0] == "serve" else ["--api-key", "xp_000000000000_" + "A" * 43]
    result = xp(*arguments, "--home", tmp_path / "home", *key)
    assert_error(result, exit_code, word)
    assert list(tmp_path.iterdir()) == []


def test_templates_record_into_a_missing_folder_is_an_input_error(faces: Path, tmp_path: Path) -> None:
    result = xp("templates", "record", faces / "driving" / "lp_d1_hist.mp4", tmp_path / "nowhere" / "t.json")
    assert_error(result, 2, "nowhere")
    assert list(tmp_path.iterdir()) == []


def test_serve_on_a_port_in_use_is_an_input_error(tmp_path: Path) -> None:
    import socket

    home = tmp_path / "home"
    assert xp("init", "--home", home, "--json").code == 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = xp("serve", "--home", home, "--host", "127.0.0.1", "--port", port)
    assert_error(result, 2, str(port))


@pytest.mark.parametrize(
    ("text", "future", "delta"),
    [("30d", True, timedelta(days=30)), ("12H", True, timedelta(hours=12)), (" 90 m ", False, timedelta(minutes=90)),
     ("2w", False, timedelta(weeks=2)), ("45s", True, timedelta(seconds=45))],
)  # fmt: skip
def test_durations_give_aware_times_that_far_from_now(text: str, future: bool, delta: timedelta) -> None:
    before = datetime.now(UTC)
    parsed = parse_time(text, option="--when", future=future)
    after = datetime.now(UTC)
    assert parsed is not None and parsed.tzinfo is not None and parsed.utcoffset() == timedelta(0)
    if future:
        assert before + delta <= parsed <= after + delta
    else:
        assert before - delta <= parsed <= after - delta


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2027-01-01", datetime(2027, 1, 1, tzinfo=UTC)),
        ("2027-01-01T12:00", datetime(2027, 1, 1, 12, tzinfo=UTC)),
        ("2027-01-01T12:00+02:00", datetime(2027, 1, 1, 10, tzinfo=UTC)),
        ("2027-01-01T00:00Z", datetime(2027, 1, 1, tzinfo=UTC)),
    ],
)
def test_iso_times_are_aware_and_utc(text: str, expected: datetime) -> None:
    parsed = parse_time(text, option="--when", future=True)
    assert parsed == expected and parsed is not None and parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", ["0d", "36500d", "1s"])
def test_durations_up_to_a_hundred_years_are_kept(text: str) -> None:
    assert parse_duration(text, option="--older-than").total_seconds() >= 0
