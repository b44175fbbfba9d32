"""Permissions a plugin can request, and the host's policy that grants them.

A plugin lists the permissions it needs in its manifest. The host's
:class:`PermissionPolicy` grants a default set to every plugin plus extra grants
per plugin id. A plugin that requests anything outside its grants is refused
before any of its code is imported.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from acp_plugins.errors import PermissionDenied, TopicDenied
from acp_plugins.topics import HOST_TOPIC_PREFIX, overlap

__all__ = ["DEFAULT_GRANTS", "Permission", "PermissionPolicy"]


class Permission(str, Enum):
    """The permissions of the specification, by their manifest names."""

    READ_MESSAGING = "read-messaging"
    WRITE_MESSAGING = "write-messaging"
    MANAGE_AGENTS = "manage-agents"
    READ_CONFIG = "read-config"
    WRITE_CONFIG = "write-config"
    READ_SYSTEM_INFO = "read-system-info"
    WRITE_LOGS = "write-logs"
    EXECUTE_COMMANDS = "execute-commands"
    READ_DATA = "read-data"
    WRITE_DATA = "write-data"
    MANAGE_DATABASE = "manage-database"
    #: Beyond the specification: what an isolated worker's sandbox refuses otherwise.
    NETWORK = "network"
    RUN_PROCESSES = "run-processes"

    def __str__(self) -> str:
        return self.value


#: What every plugin is granted unless the policy says otherwise: reading and
#: sending messages, reading its own configuration and shared data, writing logs.
DEFAULT_GRANTS: frozenset[Permission] = frozenset(
    {
        Permission.READ_MESSAGING,
        Permission.WRITE_MESSAGING,
        Permission.READ_CONFIG,
        Permission.WRITE_LOGS,
        Permission.READ_DATA,
    }
)


@dataclass(frozen=True, slots=True)
class PermissionPolicy:
    """Which permissions the host grants: ``defaults`` to all, ``grants`` per plugin id."""

    defaults: frozenset[Permission] = DEFAULT_GRANTS
    grants: Mapping[str, frozenset[Permission]] = field(default_factory=dict)
    #: Topic pattern -> the only plugins that may subscribe to topics it matches
    #: (``{"user.*": {"analytics"}}``); topics no pattern names are open to all.
    subscribe_topics: Mapping[str, frozenset[str]] = field(default_factory=dict)
    #: Topic pattern -> the only plugins that may publish on topics it matches.
    publish_topics: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def from_names(
        cls,
        grants: Mapping[str, Iterable[str]] | None = None,
        defaults: Iterable[str] | None = None,
    ) -> PermissionPolicy:
        """Build a policy from permission names (raises ``ValueError`` on an unknown name).

        A single name may be given as a plain string instead of a list of one.
        """
        return cls(
            defaults=DEFAULT_GRANTS
            if defaults is None
            else _permissions(defaults, "in the default grants"),
            grants={
                plugin_id: _permissions(names, f"granted to '{plugin_id}'")
                for plugin_id, names in (grants or {}).items()
            },
        )

    def granted(self, plugin_id: str) -> frozenset[Permission]:
        """Every permission ``plugin_id`` holds."""
        return self.defaults | self.grants.get(plugin_id, frozenset())

    def topic_refusal(self, plugin_id: str, pattern: str, action: str) -> str | None:
        """Why ``plugin_id`` may not ``action`` (subscribe, publish) on ``pattern`` (else None)."""
        rules = self.subscribe_topics if action == "subscribe" else self.publish_topics
        for restricted, allowed in sorted(rules.items()):
            if plugin_id not in allowed and overlap(restricted, pattern):
                who = ", ".join(f"'{p}'" for p in sorted(allowed)) or "no plugin"
                return (
                    f"only {who} may {action} on topics matching '{restricted}' (the host's "
                    f"policy, {action}_topics); '{plugin_id}' asked for '{pattern}'"
                )
        return None

    def topic_denial(
        self, plugin_id: str, granted: frozenset[Permission], pattern: str, action: str
    ) -> PermissionDenied | None:
        """The error refusing ``plugin_id`` to ``action`` on ``pattern`` (``None``: allowed).

        Checked by the host, and by a worker for an early, identical refusal.
        """
        if action == "publish" and pattern.startswith(HOST_TOPIC_PREFIX):
            return TopicDenied(plugin_id, pattern, f"the '{HOST_TOPIC_PREFIX}*' topics are the "
                               "host's own")  # fmt: skip
        if (
            action == "subscribe"
            and overlap(pattern, HOST_TOPIC_PREFIX + "*")
            and Permission.READ_SYSTEM_INFO not in granted
        ):
            operation = f"subscribe to the host's events ('{pattern}')"
            return PermissionDenied(plugin_id, Permission.READ_SYSTEM_INFO.value, operation)
        refusal = self.topic_refusal(plugin_id, pattern, action)
        return TopicDenied(plugin_id, pattern, refusal) if refusal is not None else None

    def topic_rules(self) -> dict[str, dict[str, list[str]]]:
        """The per-topic grants as JSON data (what a worker checks against)."""
        return {
            "subscribe": {p: sorted(ids) for p, ids in self.subscribe_topics.items()},
            "publish": {p: sorted(ids) for p, ids in self.publish_topics.items()},
        }

    @classmethod
    def from_topic_rules(cls, rules: Mapping[str, Mapping[str, Iterable[str]]]) -> PermissionPolicy:
        """A policy holding only the per-topic grants of :meth:`topic_rules`."""
        return cls(
            subscribe_topics={p: frozenset(ids) for p, ids in rules.get("subscribe", {}).items()},
            publish_topics={p: frozenset(ids) for p, ids in rules.get("publish", {}).items()},
        )

    def missing(self, plugin_id: str, requested: Iterable[Permission]) -> list[Permission]:
        """The requested permissions that are not granted, in request order."""
        held = self.granted(plugin_id)
        return [permission for permission in requested if permission not in held]


def _permissions(names: Iterable[str], where: str) -> frozenset[Permission]:
    # a bare string is one name, not an iterable of one-letter names
    found = set()
    for name in [names] if isinstance(names, str) else names:
        try:
            found.add(Permission(name))
        except ValueError:
            known = ", ".join(permission.value for permission in Permission)
            raise ValueError(
                f"unknown permission {name!r} {where}; known permissions: {known}"
            ) from None
    return frozenset(found)
