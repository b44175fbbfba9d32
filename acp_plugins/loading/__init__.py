"""Loading: everything the host decides before any plugin code runs.

Discovery of entry points, reading and validating manifests, version ranges,
dependency resolution, the permission and trust policies, and the interfaces a
manifest may declare. Nothing here imports a plugin; nothing here knows the host.
"""
