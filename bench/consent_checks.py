"""Consent-video checks on every clip in the shared faces: false accepts and false rejects of the action detector
and the phrase check.

Run it as ``.venv/bin/python bench/consent_checks.py [--faces PATH] [--challenges N]`` (about a minute).

For each clip in ``$XP_FACES/driving`` (default ``<repo>/../shared/faces``) it reads the face through every frame
and the speech once (``xp_sdk.consent``), then:

* false accept: ``N`` random challenges (``draw_challenge`` with a fixed seed) that the clip does not perform:
  how many the action detector (liveness' order check alone) and the phrase check accept;
* false reject: a challenge built from what the clip does, labelled by looking (``LABELS``, from the manifest's
  descriptions; the GRID speaker's sentence from its manifest): whether it is refused.

The frozen and loop checks are left out of the action columns: they judge the clip, not the challenge.

Measured 2026-12-08 (the five clips of ../shared/faces, 1000 challenges a clip, seed 21):

| clip | actions seen | words heard | action FA | phrase FA | own actions | own phrase |
|---|---|---|---|---|---|---|
| grid_bbaf2n.mpg | blink-twice | bin blue at f two now | 0/1000 | 0/1000 | - | accepted |
| lp_d18.mp4 | open-mouth, open-mouth, smile, open-mouth | (none) | 0/1000 | 0/1000 | accepted | - |
| lp_d1_hist.mp4 | none | (none) | 0/1000 | 0/1000 | - | - |
| lp_d5_hist.mp4 | open-mouth, smile | (none) | 0/1000 | 0/1000 | accepted | - |
| lp_d7_hist.mp4 | blink-twice, blink-twice, raise-brows, raise-brows | (none) | 0/1000 | 0/1000 | accepted | - |

False accepts 0 of 5000 for each check; false rejects 0 of 4 own challenges. The clips are short and perform at
most three action kinds, so few random challenges are within their reach: the action FA column is weak evidence.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xp_sdk.consent.challenge import FacialAction, draw_challenge
from xp_sdk.consent.liveness import detect_actions, in_order
from xp_sdk.consent.observe import observe_video
from xp_sdk.consent.speech import transcribe
from xp_sdk.engine.identity import IdentityEmbedder

A = FacialAction
# What each clip does, by looking (and from faces/manifest.json's descriptions); None: no phrase said.
LABELS: dict[str, tuple[tuple[FacialAction, ...], str | None]] = {
    "lp_d1_hist.mp4": ((), None),  # one blink in 16 frames: no requestable action
    "lp_d5_hist.mp4": ((A.SMILE,), None),  # pucker, wink, toothy grin
    "lp_d7_hist.mp4": ((A.BLINK_TWICE, A.RAISE_BROWS), None),  # blinks, squeezes, then raised brows
    "lp_d18.mp4": ((A.OPEN_MOUTH,), None),  # jaw opens wide
    "grid_bbaf2n.mpg": ((), "bin blue at f two now"),  # a GRID sentence, face still
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = Path(os.environ.get("XP_FACES", Path(__file__).resolve().parent.parent.parent / "shared" / "faces"))
    parser.add_argument("--faces", type=Path, default=default)
    parser.add_argument("--challenges", type=int, default=1000)
    args = parser.parse_args()
    rng = random.Random(21)
    rows = []
    with IdentityEmbedder() as embedder:
        for clip in sorted((args.faces / "driving").iterdir()):
            actions, sentence = LABELS.get(clip.name, ((), None))
            performed = detect_actions(observe_video(clip, embedder).frames)
            heard = transcribe(clip)
            challenges = [draw_challenge(subject_id="s", tenant_id="t", rng=rng) for _ in range(args.challenges)]
            foreign = [c for c in challenges if tuple(c.actions) != actions]
            action_fa = sum(in_order(c.actions, performed) for c in foreign)
            phrase_fa = sum(heard.words == tuple(c.phrase.split()) for c in challenges if c.phrase != sentence)
            action_fr = "-" if not actions else ("rejected" if not in_order(actions, performed) else "accepted")
            phrase_fr = "-" if sentence is None else ("rejected" if heard.text != sentence else "accepted")
            rows.append((clip.name, ", ".join(e.action.value for e in performed) or "none", heard.text or "(none)",
                         f"{action_fa}/{len(foreign)}", f"{phrase_fa}/{len(challenges)}", action_fr, phrase_fr))
    print("| clip | actions seen | words heard | action FA | phrase FA | own actions | own phrase |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
