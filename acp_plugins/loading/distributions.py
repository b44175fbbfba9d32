"""What installed distributions provide, read from their metadata (no code of theirs runs)."""

from __future__ import annotations

import importlib.metadata

from packaging.requirements import InvalidRequirement, Requirement

__all__ = ["dependency_modules", "top_level_modules"]


def dependency_modules(distribution: str) -> frozenset[str]:
    """Top-level modules of the distributions ``distribution`` requires (what it may import)."""
    try:
        requirements = importlib.metadata.requires(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        return frozenset()
    modules: set[str] = set()
    for text in requirements:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue  # an extra's requirement, or one for another platform
        try:
            modules |= top_level_modules(importlib.metadata.distribution(requirement.name))
        except importlib.metadata.PackageNotFoundError:
            continue
    return frozenset(modules)


def top_level_modules(dist: importlib.metadata.Distribution) -> set[str]:
    """The importable top-level names a distribution installs.

    ``top_level.txt`` where there is one, else the first part of each installed
    path (Python 3.10's ``packages_distributions`` reads only ``top_level.txt``,
    which most wheels do not have).
    """
    declared = dist.read_text("top_level.txt")
    if declared:
        return {line.strip() for line in declared.splitlines() if line.strip()}
    found: set[str] = set()
    for path in dist.files or ():
        first = path.parts[0] if path.parts else ""
        if not first or first == ".." or first.endswith((".dist-info", ".egg-info", ".pth")):
            continue
        if len(path.parts) > 1:
            found.add(first)  # a package
        elif first.endswith(".py"):
            found.add(first.removesuffix(".py"))
        elif first.endswith((".so", ".pyd")):
            found.add(first.partition(".")[0])  # an extension module
    return {name for name in found if name.isidentifier()}
