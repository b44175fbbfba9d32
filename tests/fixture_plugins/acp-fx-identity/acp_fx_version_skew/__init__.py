"""Fixture plugin version-skew: its manifest says 1.0.0, its distribution 1.1.0."""

import os as _os

if _os.environ.get("ACP_FIXTURE_SIDE_EFFECT"):
    with open(_os.environ["ACP_FIXTURE_SIDE_EFFECT"], "a") as _stream:
        _stream.write(__name__ + "\n")
