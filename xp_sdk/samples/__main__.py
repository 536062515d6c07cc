"""``python -m xp_sdk.samples PATH``: write the sample portrait to PATH."""

from __future__ import annotations

import sys

from xp_sdk.errors import XPError
from xp_sdk.samples import write_astronaut


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m xp_sdk.samples PATH   (writes the sample astronaut portrait, a JPEG, to PATH)")
        return 2
    try:
        written = write_astronaut(argv[0])
    except XPError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(written)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
