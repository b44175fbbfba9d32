r"""Version ranges for plugin requirements: npm-style ranges and PEP 440 specifiers.

(This docstring is Markdown so that it can be copied into the README.)

A range is written either in the npm style (`^1.2`, `~1.4.0`, `>=1.2 <2`,
`1.2.3 - 2.0`, `1.x || ^3`) or as a PEP 440 specifier set (`>=1.2,<2`,
`~=1.4`). Either way it becomes a union of `packaging.specifiers.SpecifierSet`
objects and every check is done by `packaging`, so plugin versions are
compared as pip compares them.

**Which syntax?** The text is PEP 440 if it contains a comma, if one of its
`||` alternatives starts (after stripping whitespace) with `~=`, `==`, `!=`
or `===`, or if one of them is a single PEP 440 specifier that is not valid
npm (`>=1.0.0.dev0`, `<2.0.post1`); otherwise it is npm style. `>=1.2` is
therefore npm style, which means the same thing anyway. PEP 440 text may
join specifier sets with `||` (an extension: `||` is not PEP 440 syntax);
every alternative must then be PEP 440 and none may be empty.

**Round trip.** `parse_range(r.describe())` admits exactly the versions `r`
admits. Where the PEP 440 form would read differently as npm (`>2.1` means
`>=2.2.0` to npm), `describe()` writes release numbers out to three parts
(`>2.1.0`), which PEP 440 compares as equal.

**Limits.** A range is at most 1,024 characters and a version (alone or in a
range) at most 128; longer text is refused with a `VersionRangeError`, as is any number that
Python cannot read (more than 4,300 digits cannot occur within these limits).

| npm range | PEP 440 meaning (`VersionRange.describe()`) |
| --- | --- |
| `*`, `x`, `X`, empty text | `>=0.0.0` (any release) |
| `1.2.3`, `=1.2.3`, `v1.2.3` | `==1.2.3` |
| `1`, `1.x`, `1.*`, `1.x.x`, `=1` | `>=1.0.0,<2.0.0` |
| `1.2`, `1.2.x`, `1.2.*`, `=1.2` | `>=1.2.0,<1.3.0` |
| `^1.2.3` | `>=1.2.3,<2.0.0` |
| `^0.2.3` | `>=0.2.3,<0.3.0` |
| `^0.0.3` | `>=0.0.3,<0.0.4` |
| `^1.2`, `^1.2.x` | `>=1.2.0,<2.0.0` |
| `^0.0`, `^0.0.x` | `>=0.0.0,<0.1.0` |
| `^1`, `^1.x` | `>=1.0.0,<2.0.0` |
| `^0`, `^0.x` | `>=0.0.0,<1.0.0` |
| `~1.2.3`, `~>1.2.3` | `>=1.2.3,<1.3.0` |
| `~1.2`, `~1.2.x` | `>=1.2.0,<1.3.0` |
| `~1`, `~1.x` | `>=1.0.0,<2.0.0` |
| `~0.2.3` | `>=0.2.3,<0.3.0` |
| `~0.2` | `>=0.2.0,<0.3.0` |
| `~0` | `>=0.0.0,<1.0.0` |
| `^*`, `~*`, `>=*`, `<=*`, `=*` | `>=0.0.0` (any release) |
| `>*`, `<*` | `<0.0.0` (matches nothing) |
| `>1.2.3`, `>=1.2.3`, `<1.2.3`, `<=1.2.3` | the same |
| `>1.2`, `>1` | `>=1.3.0`, `>=2.0.0` |
| `>=1.2`, `>=1` | `>=1.2.0`, `>=1.0.0` |
| `<1.2`, `<1` | `<1.2.0`, `<1.0.0` |
| `<=1.2`, `<=1` | `<1.3.0`, `<2.0.0` |
| `>= 1.2.3`, `^ 1.2`, `~> 1.2` | `>=1.2.3`, `>=1.2.0,<2.0.0`, `>=1.2.0,<1.3.0` |
| `>=1.2 <2` (space = AND) | `>=1.2.0,<2.0.0` |
| `1.2.3 - 2.3.4` | `>=1.2.3,<=2.3.4` |
| `1.2 - 2.3.4` | `>=1.2.0,<=2.3.4` |
| `1.2.3 - 2.3` | `>=1.2.3,<2.4.0` |
| `1.2.3 - 2` | `>=1.2.3,<3.0.0` |
| `* - 2`, `1 - *` | `<3.0.0`, `>=1.0.0` |
| `^1.2 \|\| ~3.1` | `>=1.2.0,<2.0.0 \|\| >=3.1.0,<3.2.0` |
| `1.2.3 \|\|` (empty alternative) | `==1.2.3 \|\| >=0.0.0` (empty means any) |
| `^1.2.3-beta.2` | `>=1.2.3b2,<2.0.0` |
| `~1.2.3-rc.1` | `>=1.2.3rc1,<1.3.0` |
| `>=1.0.0-0` | `>=1.0.0.dev0` (read back as PEP 440) |
| `1.2.3+build.5` | `==1.2.3` (build metadata is ignored) |
| `>=1.2,<2`, `~=1.4`, `==1.2.*`, `!=1.3.0` | as written (PEP 440) |
| `>=1,<2 \|\| >=3,<4` | as written (PEP 440 with `\|\|`) |

Spaces may follow an operator (`>= 1.2.3`, `^ 1.2`, `~> 1.2`). A leading `v`
(`v1.2.3`, `^v1.2`, `>=v1.2`, `1 - v2`) and a leading `=` on a comparator
(`=1.2.3`, `=v1.2`) are stripped, as npm does. Within an AND-set
an "any" comparator is dropped when there are others and a "nothing"
comparator makes the whole set "nothing"; "nothing" alternatives are dropped
from a union that has others (all as npm does). Within an alternative,
`describe()` puts lower bounds before upper bounds.

**Pre-release tags.** An npm pre-release tag is mapped to its PEP 440
spelling: `alpha`/`a` -> `aN`, `beta`/`b` -> `bN`, `rc`/`c`/`pre`/`preview`
-> `rcN`, `dev` -> `.devN`, each optionally followed by a number (`beta.2`,
`beta2`, `beta-2`; no number means 0), and a bare number `-N` -> `.devN` (so
npm's "lowest pre-release" idiom `-0` stays the lowest). Any other tag
(`-alpha.beta`, `-foo`, `-beta.1.2`) has no PEP 440 equivalent and is
rejected. Ordering then follows PEP 440: `dev < a < b < rc`, `beta` equals
`beta.0` and `pre` equals `rc`, whereas npm compares the identifiers as
strings (`alpha < beta < dev < pre < rc`, `beta < beta.0`,
`alpha10 < alpha2`).

**Pre-release admission differs from npm.** `VersionRange.contains()` admits
a pre-release version only through an alternative in which some specifier
other than `!=` names a pre-release (PEP 440's rule; it is applied explicitly
so the answer does not depend on the installed packaging: packaging < 24
counted only `==`, `>=`, `<=`, `~=` and `===`, and packaging 26 admits
pre-releases by default). Such an alternative then admits *every*
pre-release inside its bounds: `^1.2.3-beta.2` (`>=1.2.3b2,<2.0.0`) contains
`1.2.3b3` *and* `1.5.0a1`. npm admits a pre-release only when a comparator in
the same set names a pre-release of the *same* `major.minor.patch`, so npm's
`^1.2.3-beta.2` matches `1.2.3-beta.3` but not `1.5.0-alpha.1`, and its
`>=1.0.0-0` matches `1.0.0-rc.1` but not `3.0.0-rc.1` (ours matches both).
Ranges that name no pre-release admit none, in both systems (`^1.2.3`
contains neither `1.5.0a1` nor `2.0.0a1`). An upper bound made from a
partial version (`<2.0.0`) excludes the pre-releases of that version by PEP
440's rule for `<`, which is what npm's `<2.0.0-0` does. On release versions
the two systems agree exactly; the tests check this against npm's own
`semver` package.

**Versions.** `parse_version()` reads PEP 440 versions with packaging's parser,
which also takes `v1.2.3`, `1.2.3-beta.2` (-> `1.2.3b2`) and `1.2.3+build`
(a local version). PEP 440 reads `1.2.3-1` as the *post*-release
`1.2.3.post1`, while inside an npm *range* `-1` is a pre-release (`.dev1`).

**Other differences from node-semver 7:**

* A comma, or `~=`, `==`, `!=` at the start, selects PEP 440: `~=1.2` is
  `>=1.2,<2` here but `~1.2` (`<1.3.0`) in npm, and `==x` (any version to
  npm) is invalid PEP 440. `~=` elsewhere in an npm range is rejected with a
  hint.
* Rejected although npm accepts them (npm silently ignores or repairs the
  odd part): numbers after a wildcard (`^1.x.3`, `~x.1`, `1.x.3 - 2`), a
  pre-release tag on a wildcard (`1.2.x-beta`), prefixes that npm's regular
  expressions happen to tolerate (`^vv1`, `v=1.2`, `^=1.2`, `~>=1.2`,
  `>==1.2`, `~ > 1.2`, `=1.2 - 2`; npm itself rejects `=1.2.3 - 2`) and build
  metadata standing alone (`1.2.3 +build`, `+build`).
* Accepted although npm rejects them: version numbers above `2**53 - 1`.
* npm collapses a union containing `*` to `*`; the alternatives are kept
  here (same release versions, and `describe()` shows them all).
"""

from __future__ import annotations

import functools
import itertools
import re
from dataclasses import dataclass
from typing import Final, Literal

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

__all__ = [
    "MAX_RANGE_LENGTH",
    "MAX_VERSION_LENGTH",
    "VersionRange",
    "VersionRangeError",
    "parse_range",
    "parse_version",
]

ACCEPTED_FORMS: Final = (
    "accepted forms: '1.2.3', '1.2.x', '*', '^1.2.3', '~1.2.3', '>=1.2 <2', "
    "'1.2.3 - 2.3.4', 'A || B', or PEP 440 such as '>=1.2,<2' or '~=1.4'"
)


class VersionRangeError(ValueError):
    """A version range (or version) could not be parsed."""


#: The longest range text and the longest version text that are read at all.
MAX_RANGE_LENGTH: Final = 1024
MAX_VERSION_LENGTH: Final = 128


def _error(text: str, problem: str) -> VersionRangeError:
    return VersionRangeError(f"invalid version range {text!r}: {problem} ({ACCEPTED_FORMS})")


_OPERATOR_RANK: Final = {"===": 0, "==": 0, "~=": 1, ">=": 2, ">": 2, "<": 3, "<=": 3, "!=": 4}


@dataclass(frozen=True, slots=True)
class VersionRange:
    """A parsed version range: a union of PEP 440 specifier sets.

    Build one with :func:`parse_range`.  ``version in rng`` is the same as
    ``rng.contains(version)``.
    """

    text: str
    """The text the range was parsed from."""
    alternatives: tuple[SpecifierSet, ...]
    """A version matches if any of these specifier sets contains it."""
    syntax: Literal["npm", "pep440"]
    """Which syntax the text was read as."""

    def contains(self, version: str | Version) -> bool:
        """Whether ``version`` is in the range (see the module doc on pre-releases).

        A string is read with :func:`parse_version`, so an invalid one raises
        :class:`VersionRangeError`.
        """
        if isinstance(version, str):
            version = parse_version(version)
        elif not isinstance(version, Version):
            raise TypeError(f"expected a version string or Version, got {type(version).__name__}")
        return any(
            spec_set.contains(version, prereleases=_admits_prereleases(spec_set))
            for spec_set in self.alternatives
        )

    def __contains__(self, version: object) -> bool:
        if not isinstance(version, (str, Version)):
            raise TypeError(f"expected a version string or Version, got {type(version).__name__}")
        return self.contains(version)

    def __str__(self) -> str:
        return self.text

    def describe(self) -> str:
        """The PEP 440 form, alternatives joined by ``" || "``, e.g. ``>=1.2.3,<2.0.0``.

        Within an alternative, lower bounds come before upper bounds.
        """
        # a "nothing" alternative beside others changes nothing (npm drops it when it reads)
        kept = [a for a in self.alternatives if str(a) != "<0.0.0"] or list(self.alternatives)
        described = [_describe_set(spec_set) for spec_set in kept]
        text = " || ".join(described)
        if _is_pep440(text) or _has_pep440_only_alternative(text):
            return text
        # Every alternative is one specifier that npm reads too: write release numbers out
        # to three parts, where npm and PEP 440 agree (npm's `>2.1` is PEP 440's `>=2.2.0`).
        return " || ".join(_full_release(spec_set) for spec_set in kept)


def _admits_prereleases(spec_set: SpecifierSet) -> bool:
    # True if set so explicitly by whoever built the SpecifierSet, else PEP 440's rule.
    return bool(spec_set.prereleases) or _names_prerelease(spec_set)


@functools.lru_cache(maxsize=4096)
def _names_prerelease(spec_set: SpecifierSet) -> bool:
    """Whether a specifier other than ``!=`` names a pre-release version (PEP 440's rule).

    Decided here rather than by ``SpecifierSet.prereleases`` because packaging's
    answer has changed over time (< 24 ignored ``<`` and ``>``; 26 admits
    pre-releases by default).
    """
    for spec in spec_set:
        if spec.operator == "!=" or spec.version.endswith(".*"):
            continue
        try:
            if Version(spec.version).is_prerelease:
                return True
        except InvalidVersion:  # "===" takes arbitrary strings
            continue
    return False


def _describe_set(spec_set: SpecifierSet) -> str:
    specs = sorted(
        spec_set, key=lambda s: (_OPERATOR_RANK.get(s.operator, 5), s.operator, s.version)
    )
    return ",".join(str(s) for s in specs)


def _full_release(spec_set: SpecifierSet) -> str:
    (spec,) = spec_set
    version = Version(spec.version)
    release = ".".join(str(n) for n in (*version.release, 0, 0)[: max(3, len(version.release))])
    epoch = f"{version.epoch}!" if version.epoch else ""
    pre = "".join(str(part) for part in version.pre) if version.pre else ""
    post = f".post{version.post}" if version.post is not None else ""
    dev = f".dev{version.dev}" if version.dev is not None else ""
    return f"{spec.operator}{epoch}{release}{pre}{post}{dev}"


def parse_range(text: str) -> VersionRange:
    """Parse an npm-style range or a PEP 440 specifier set (results are cached).

    Raises :class:`VersionRangeError` if the text is not a valid range, or is
    longer than :data:`MAX_RANGE_LENGTH` characters.
    """
    if not isinstance(text, str):
        raise TypeError(f"a version range must be a string, got {type(text).__name__}")
    if len(text) > MAX_RANGE_LENGTH:
        raise VersionRangeError(
            f"a version range of {len(text):,} characters is too long "
            f"(at most {MAX_RANGE_LENGTH:,}); {text[:40]!r}..."
        )
    return _parse_range_cached(text)


def parse_version(text: str) -> Version:
    """Parse a PEP 440 version (results are cached).

    Raises :class:`VersionRangeError` if the text is not a valid version, or is
    longer than :data:`MAX_VERSION_LENGTH` characters.
    """
    if not isinstance(text, str):
        raise TypeError(f"a version must be a string, got {type(text).__name__}")
    if len(text) > MAX_VERSION_LENGTH:
        raise VersionRangeError(
            f"a version of {len(text):,} characters is too long "
            f"(at most {MAX_VERSION_LENGTH}); {text[:40]!r}..."
        )
    return _parse_version_cached(text)


@functools.lru_cache(maxsize=4096)
def _parse_version_cached(text: str) -> Version:
    try:
        return Version(text)
    except (InvalidVersion, ValueError):  # ValueError: a number beyond Python's digit limit
        raise VersionRangeError(
            f"{text!r} is not a valid version (expected a PEP 440 version such as "
            "'1.2.3', '1.2.3rc1' or '1.2.3.post1'; semver pre-releases such as "
            "'1.2.3-beta.2' are also read)"
        ) from None


@functools.lru_cache(maxsize=4096)
def _parse_range_cached(text: str) -> VersionRange:
    if _is_pep440(text) or _has_pep440_only_alternative(text):
        rng = VersionRange(text, _parse_pep440(text), "pep440")
    else:
        rng = VersionRange(text, _parse_npm(text), "npm")
    for spec in itertools.chain.from_iterable(rng.alternatives):
        if len(spec.version) > MAX_VERSION_LENGTH:
            raise _error(
                text[:60] + "...",
                f"a version in it is longer than {MAX_VERSION_LENGTH} characters",
            )
    return rng


def _is_pep440(text: str) -> bool:
    # "===" starts with "=="
    return "," in text or any(
        part.strip().startswith(("~=", "==", "!=")) for part in text.split("||")
    )


def _has_pep440_only_alternative(text: str) -> bool:
    """Whether one alternative is a single PEP 440 specifier that is not valid npm."""
    return any(_is_pep440_only(part.strip()) for part in text.split("||"))


def _is_pep440_only(part: str) -> bool:
    if not part or " " in part:
        return False
    try:
        SpecifierSet(part)
        _parse_npm_alternative(part, part)
    except InvalidSpecifier:
        return False
    except VersionRangeError:
        return True
    return False


def _parse_pep440(text: str) -> tuple[SpecifierSet, ...]:
    why = (
        "it contains a comma"
        if "," in text
        else f"it starts with {text.strip()[:2]!r}"
        if text.strip().startswith(("~=", "==", "!="))
        else "an alternative starts with '~=', '==' or '!='"
        if _is_pep440(text)
        else "an alternative is a PEP 440 specifier"
    )
    alternatives = []
    for part in text.split("||"):
        part = part.strip()
        if not part:
            raise _error(text, "an alternative between '||' is empty in a PEP 440 range")
        try:
            spec_set = SpecifierSet(part)
        except InvalidSpecifier:
            raise _error(
                text,
                f"{part!r} is not a valid PEP 440 specifier set (read as PEP 440 because {why};"
                " npm operators such as '^', '~' and spaces cannot be mixed with commas)",
            ) from None
        if not len(spec_set):
            raise _error(text, f"{part!r} holds no specifier")
        for spec in spec_set:
            _check_specifier_version(spec.operator, spec.version, text)
        alternatives.append(spec_set)
    return tuple(alternatives)


def _check_specifier_version(operator: str, version: str, text: str) -> None:
    """Refuse now what packaging would refuse only when asked to compare."""
    if operator == "===":
        return
    try:
        Version(version.removesuffix(".*"))
    except (InvalidVersion, ValueError):
        raise _error(text, f"{operator}{version!r} names a version that cannot be read") from None


# --- npm-style ranges -------------------------------------------------------------------

# One version "bound": (PEP 440 operator, PEP 440 version).  A comparator becomes a tuple
# of bounds; the empty tuple means "any version".
_Bound = tuple[str, str]
_ANY: Final[tuple[_Bound, ...]] = ()
_NOTHING: Final[tuple[_Bound, ...]] = (("<", "0.0.0"),)  # PEP 440 "<0.0.0" matches nothing

_NUM = r"0|[1-9][0-9]*"
_XR = rf"{_NUM}|[xX*]"
_PRE_ID = r"0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*"
_BUILD_ID = r"[0-9A-Za-z-]+"
_PARTIAL_RE: Final = re.compile(
    rf"v?(?P<major>{_XR})(?:\.(?P<minor>{_XR})(?:\.(?P<patch>{_XR})"
    rf"(?:-(?P<pre>(?:{_PRE_ID})(?:\.(?:{_PRE_ID}))*))?)?)?"
    rf"(?:\+{_BUILD_ID}(?:\.{_BUILD_ID})*)?"
)
_PEP440_PRE_RE: Final = re.compile(r"(?P<tag>[A-Za-z]+)(?:[.-]?(?P<num>[0-9]+))?")
_PEP440_PRE_TAGS: Final = {
    "alpha": "a",
    "a": "a",
    "beta": "b",
    "b": "b",
    "rc": "rc",
    "c": "rc",
    "pre": "rc",
    "preview": "rc",
    "dev": ".dev",
}
_OPERATORS: Final = ("~>", "~", "^", "<=", ">=", "<", ">", "=")
_HYPHEN_RE: Final = re.compile(r"(?P<low>\S+) - (?P<high>\S+)")


@dataclass(frozen=True, slots=True)
class _Partial:
    """A possibly partial version: ``None`` is a wildcard or missing part."""

    major: int | None
    minor: int | None
    patch: int | None
    pre: str  # PEP 440 pre-release suffix ("b2", ".dev0") or ""

    def version(self) -> str:
        return f"{self.major or 0}.{self.minor or 0}.{self.patch or 0}{self.pre}"


def _parse_npm(text: str) -> tuple[SpecifierSet, ...]:
    alternatives: list[tuple[_Bound, ...]] = []
    for part in text.split("||"):
        alternatives.append(_parse_npm_alternative(" ".join(part.split()), text))
    if len(alternatives) > 1:
        alternatives = [a for a in alternatives if a != _NOTHING] or [_NOTHING]
    return tuple(_to_specifier_set(bounds) for bounds in alternatives)


def _to_specifier_set(bounds: tuple[_Bound, ...]) -> SpecifierSet:
    if not bounds:
        return SpecifierSet(">=0.0.0")
    return SpecifierSet(",".join(op + version for op, version in bounds))


def _parse_npm_alternative(alt: str, text: str) -> tuple[_Bound, ...]:
    """One ``||``-separated alternative, whitespace already collapsed to single spaces."""
    if not alt:
        return _ANY
    hyphen = _HYPHEN_RE.fullmatch(alt)
    if hyphen is not None:
        return _hyphen_bounds(hyphen["low"], hyphen["high"], text)

    tokens = alt.split(" ")
    comparators: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token == "-":
            raise _error(
                text,
                "'-' is only allowed in a hyphen range of exactly two versions, "
                "'1.2.3 - 2.3.4', with spaces around it",
            )
        if token in _OPERATORS:  # an operator followed by a space: ">= 1.2.3"
            if i + 1 == len(tokens):
                raise _error(text, f"operator {token!r} is not followed by a version")
            token += tokens[i + 1]
            i += 1
        comparators.append(token)
        i += 1

    all_bounds = [_comparator_bounds(comparator, text) for comparator in comparators]
    if _NOTHING in all_bounds:
        return _NOTHING
    return tuple(dict.fromkeys(itertools.chain.from_iterable(all_bounds)))  # keeps the order


def _hyphen_bounds(low_text: str, high_text: str, text: str) -> tuple[_Bound, ...]:
    for end in (low_text, high_text):
        if end.startswith(("<", ">", "=", "~", "^")):
            raise _error(
                text,
                f"{end!r}: the ends of a hyphen range must be plain versions,"
                " as in '1.2.3 - 2.3.4'",
            )
    low = _parse_partial(low_text, low_text, text)
    high = _parse_partial(high_text, high_text, text)
    bounds: list[_Bound] = []
    if low.major is not None:
        bounds.append((">=", low.version()))
    if high.major is None:
        pass
    elif high.minor is None:
        bounds.append(("<", f"{high.major + 1}.0.0"))
    elif high.patch is None:
        bounds.append(("<", f"{high.major}.{high.minor + 1}.0"))
    else:
        bounds.append(("<=", high.version()))
    return tuple(bounds)


def _comparator_bounds(comparator: str, text: str) -> tuple[_Bound, ...]:
    operator = next((op for op in _OPERATORS if comparator.startswith(op)), "")
    rest = comparator[len(operator) :]
    if operator == "~" and rest.startswith("="):
        raise _error(
            text,
            f"{comparator!r} is PEP 440 syntax; write a PEP 440 range with commas between"
            " its clauses (e.g. '~=1.4,!=1.4.2') or use npm's '~1.4'",
        )
    if not rest:
        raise _error(text, f"operator {operator!r} is not followed by a version")
    p = _parse_partial(rest, comparator, text)
    major, minor, patch = p.major, p.minor, p.patch

    if operator in ("^", "~", "~>"):
        if major is None:
            return _ANY
        if minor is None:  # ^1, ~1, ^0.x
            upper = f"{major + 1}.0.0"
        elif operator != "^":  # ~1.2, ~1.2.3
            upper = f"{major}.{minor + 1}.0"
        elif major != 0:  # ^1.2, ^1.2.3
            upper = f"{major + 1}.0.0"
        elif minor != 0 or patch is None:  # ^0.2, ^0.2.3, ^0.0
            upper = f"0.{minor + 1}.0"
        else:  # ^0.0.3
            upper = f"0.0.{patch + 1}"
        return ((">=", p.version()), ("<", upper))

    if major is None:
        return _NOTHING if operator in ("<", ">") else _ANY
    if minor is None or patch is None:  # a partial version: 1 or 1.2
        if operator in ("", "="):
            if minor is None:
                return ((">=", p.version()), ("<", f"{major + 1}.0.0"))
            return ((">=", p.version()), ("<", f"{major}.{minor + 1}.0"))
        next_up = f"{major + 1}.0.0" if minor is None else f"{major}.{minor + 1}.0"
        if operator == ">":
            return ((">=", next_up),)
        if operator == "<=":
            return (("<", next_up),)
        return ((operator, p.version()),)  # >= or <
    return (("==" if operator in ("", "=") else operator, p.version()),)


def _parse_partial(version: str, comparator: str, text: str) -> _Partial:
    """Parse ``v?X(.Y(.Z(-pre)?)?)?(+build)?`` where X, Y, Z may be wildcards."""
    match = _PARTIAL_RE.fullmatch(version)
    if match is None:
        core = version.removeprefix("v").split("+")[0].split("-")[0]
        if version.startswith(("<", ">", "=", "~", "^")):
            problem = f"{comparator!r} has a misplaced or doubled operator"
        elif re.search(r"[0-9xX*][<>=~^]", version):
            problem = f"{comparator!r} is two comparators; separate them with a space"
        elif re.fullmatch(r"[0-9xX*]+(?:\.[0-9xX*]+){0,1}-.*", version.removeprefix("v")):
            problem = (
                f"{comparator!r} has a pre-release tag on a partial version"
                " (a tag needs all three numbers, e.g. '1.2.0-beta.1')"
            )
        elif re.fullmatch(r"[0-9xX*]+(?:\.[0-9xX*]+){3,}", core):
            problem = (
                f"{comparator!r} has more than three version numbers"
                " (use PEP 440 syntax, e.g. '==1.2.3.4', for longer versions)"
            )
        elif re.search(r"(?:^|\.)0[0-9]", core):
            problem = f"{comparator!r} has a number with a leading zero"
        else:
            problem = f"{comparator!r} is not a valid comparator"
        raise _error(text, problem)

    parts = [match["major"], match["minor"], match["patch"]]
    numbers = [None if part in (None, "x", "X", "*") else int(part) for part in parts]
    for earlier, later in itertools.pairwise(numbers):
        if earlier is None and later is not None:
            raise _error(text, f"{comparator!r} has a number after a wildcard ('x', 'X' or '*')")
    pre = match["pre"]
    if pre is not None and numbers[2] is None:
        raise _error(text, f"{comparator!r} has a pre-release tag on a wildcard version")
    return _Partial(numbers[0], numbers[1], numbers[2], _pep440_pre(pre, comparator, text))


def _pep440_pre(pre: str | None, comparator: str, text: str) -> str:
    if pre is None:
        return ""
    if pre.isdigit():
        return f".dev{int(pre)}"
    match = _PEP440_PRE_RE.fullmatch(pre)
    if match is None or match["tag"].lower() not in _PEP440_PRE_TAGS:
        raise _error(
            text,
            f"the pre-release tag '-{pre}' in {comparator!r} has no PEP 440 equivalent"
            " (use -alpha.N, -beta.N, -rc.N, -dev.N or -N)",
        )
    return f"{_PEP440_PRE_TAGS[match['tag'].lower()]}{int(match['num'] or 0)}"
