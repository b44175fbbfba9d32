"""Fixture plugin echo (a twin): a second distribution claiming the id "echo"."""

import os as _os

if _os.environ.get("ACP_FIXTURE_SIDE_EFFECT"):
    with open(_os.environ["ACP_FIXTURE_SIDE_EFFECT"], "a") as _stream:
        _stream.write(__name__ + "\n")
