"""Import has a visible side effect: it writes the file named by ACP_FIXTURE_SIDE_EFFECT."""

import os
from pathlib import Path

_marker = os.environ.get("ACP_FIXTURE_SIDE_EFFECT")
if _marker:
    with Path(_marker).open("a") as stream:
        stream.write(__name__ + "\n")


class Plugin:
    """Never instantiated: the host refuses the plugin before import."""
