"""``python -m acp_plugins``: the ``acp-plugins`` command line."""

import sys

from acp_plugins.cli import main

sys.exit(main())
