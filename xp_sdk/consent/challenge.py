"""A consent challenge: a random spoken phrase and a random sequence of facial actions, issued once.

The phrase is a sentence of the GRID corpus' grammar (command, colour, preposition, letter, digit, adverb): six
words from a closed vocabulary of 51 that an offline recogniser constrained to that grammar reads reliably, with
64 000 sentences to draw from.
"""

from __future__ import annotations

import itertools
import re
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from random import Random, SystemRandom

from pydantic import BaseModel, ConfigDict

GRID_SLOTS: tuple[tuple[str, ...], ...] = (
    ("bin", "lay", "place", "set"),
    ("blue", "green", "red", "white"),
    ("at", "by", "in", "with"),
    tuple("abcdefghijklmnopqrstuvxyz"),  # GRID leaves out w: its name has three syllables
    ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    ("again", "now", "please", "soon"),
)
VOCABULARY = frozenset(word for slot in GRID_SLOTS for word in slot)
DEFAULT_CHALLENGE_MINUTES = 10
MAX_CHALLENGE_MINUTES = 24 * 60
CHALLENGE_ID = re.compile(r"chl_[0-9a-f]{16}")
MIN_ACTIONS, MAX_ACTIONS = 3, 4


class FacialAction(StrEnum):
    TURN_LEFT = "turn-left"
    TURN_RIGHT = "turn-right"
    LOOK_UP = "look-up"
    SMILE = "smile"
    RAISE_BROWS = "raise-brows"
    BLINK_TWICE = "blink-twice"
    OPEN_MOUTH = "open-mouth"


class ConsentChallenge(BaseModel):
    """What the subject must do on camera, and until when."""

    model_config = ConfigDict(frozen=True)

    id: str
    subject_id: str
    tenant_id: str
    purpose: str | None
    phrase: str
    actions: tuple[FacialAction, ...]
    nonce: str
    issued_at: datetime
    expires_at: datetime

    def instructions(self) -> str:
        steps = ", then ".join(a.value.replace("-", " ") for a in self.actions)
        return f'Facing the camera, {steps}; then say: "{self.phrase}".'


def draw_challenge(
    *,
    subject_id: str,
    tenant_id: str,
    purpose: str | None = None,
    minutes: int = DEFAULT_CHALLENGE_MINUTES,
    rng: Random | None = None,
    now: datetime | None = None,
) -> ConsentChallenge:
    """A fresh challenge: the phrase and the actions are drawn from the operating system's random source."""
    draw = rng or SystemRandom()
    phrase = " ".join(draw.choice(slot) for slot in GRID_SLOTS)
    count = draw.randint(MIN_ACTIONS, MAX_ACTIONS)
    actions = _actions(draw, count)
    issued = now or datetime.now(UTC)
    return ConsentChallenge(
        id="chl_" + secrets.token_hex(8),
        subject_id=subject_id,
        tenant_id=tenant_id,
        purpose=purpose,
        phrase=phrase,
        actions=actions,
        nonce=secrets.token_hex(16),
        issued_at=issued,
        expires_at=issued + timedelta(minutes=minutes),
    )


def _actions(draw: Random, count: int) -> tuple[FacialAction, ...]:
    """Distinct actions, and never a turn straight after the opposite turn (one sweep would show both)."""
    while True:
        chosen: Sequence[FacialAction] = draw.sample(list(FacialAction), count)
        pairs = itertools.pairwise(chosen)
        if not any({a, b} == {FacialAction.TURN_LEFT, FacialAction.TURN_RIGHT} for a, b in pairs):
            return tuple(chosen)


def grid_grammar() -> str:
    """The JSGF grammar of one GRID sentence."""
    rules = [f"<slot{i}> = {' | '.join(slot)};" for i, slot in enumerate(GRID_SLOTS)]
    sentence = " ".join(f"<slot{i}>" for i in range(len(GRID_SLOTS)))
    return "#JSGF V1.0;\ngrammar consent;\n" + "\n".join(rules) + f"\npublic <sentence> = {sentence};\n"
