"""``python -m xp_sdk.cli``: the same as the ``xp`` command."""

from xp_sdk.cli import main

main()
