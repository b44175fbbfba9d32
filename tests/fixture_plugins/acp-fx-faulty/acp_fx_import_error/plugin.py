"""Fails at import."""

import acp_fx_this_module_does_not_exist  # noqa: F401
