"""HTTP header collections over PAGI's raw ``(name, value)`` byte pairs.

A PAGI header list keeps order and duplicates and has lower-case byte names
(R-HDR-1..5). :class:`Headers` is a read-only, case-insensitive view of such
a list that hands out ``str`` (latin-1, the lossless byte-to-text mapping of
HTTP/1.1); :class:`MutableHeaders` is the version responses build. Values
are checked with :func:`pagi.spec.validate_header_value` when they are set,
so a CR or LF is refused where the mistake is made, not later in ``send``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Union

from pagi.spec import EventError, validate_header_name, validate_header_value

__all__ = ["HeaderInput", "Headers", "MutableHeaders", "encode_header"]

#: What header-taking constructors accept: a mapping, or ``(name, value)`` pairs
#: of ``str`` or ``bytes`` (pairs allow repeated names).
HeaderInput = Union[
    Mapping[str, str],
    Iterable[tuple[str, str]],
    Iterable[tuple[bytes, bytes]],
    Iterable[Sequence[bytes]],
    "Headers",
]


def _to_bytes(value: str | bytes) -> bytes:
    if isinstance(value, bytes):
        return value
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(
            f"header text {value!r} is not latin-1; percent-encode it or use RFC 8187 syntax"
        ) from None


def encode_header(name: str | bytes, value: str | bytes) -> tuple[bytes, bytes]:
    """Return a checked ``(name, value)`` byte pair with a lower-case name.

    Raises ``ValueError`` naming the header when the name is not a token or
    the value holds a control byte (R-HTTP-30).
    """
    raw_name = _to_bytes(name).lower()
    raw_value = _to_bytes(value)
    try:
        validate_header_name(raw_name, "header")
        validate_header_value(raw_value, "header")
    except EventError as exc:
        raise ValueError(f"header {raw_name!r}: {exc.problem}") from None
    return raw_name, raw_value


def _pairs(headers: HeaderInput | None) -> list[tuple[bytes, bytes]]:
    if headers is None:
        return []
    if isinstance(headers, Headers):
        return list(headers.raw)
    if isinstance(headers, Mapping):
        return [encode_header(k, v) for k, v in headers.items()]
    return [encode_header(pair[0], pair[1]) for pair in headers]


class Headers(Mapping[str, str]):
    """Read-only, case-insensitive, multi-valued headers; order is kept.

    ``headers["name"]`` returns the *first* value (``KeyError`` if absent);
    :meth:`getlist` returns every value in order. Iterating yields each
    distinct name once, lower-case.
    """

    __slots__ = ("_raw",)

    def __init__(
        self, headers: HeaderInput | None = None, *, raw: Iterable[Sequence[bytes]] | None = None
    ) -> None:
        if raw is not None:
            # Scope headers come from the server already checked; just lower-case names.
            self._raw: list[tuple[bytes, bytes]] = [(bytes(p[0]).lower(), bytes(p[1])) for p in raw]
        else:
            self._raw = _pairs(headers)

    @classmethod
    def from_scope(cls, scope: Mapping[str, object]) -> Headers:
        """The request headers of ``scope`` (``scope["headers"]``)."""
        return cls(raw=scope.get("headers") or [])  # type: ignore[arg-type]

    @property
    def raw(self) -> list[tuple[bytes, bytes]]:
        """The ``(name, value)`` byte pairs, as a PAGI event carries them."""
        return self._raw

    def __getitem__(self, key: str) -> str:
        wanted = _to_bytes(key).lower()
        for name, value in self._raw:
            if name == wanted:
                return value.decode("latin-1")
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, (str, bytes)):
            return False
        wanted = _to_bytes(key).lower()
        return any(name == wanted for name, _ in self._raw)

    def __iter__(self) -> Iterator[str]:
        seen: set[bytes] = set()
        for name, _ in self._raw:
            if name not in seen:
                seen.add(name)
                yield name.decode("latin-1")

    def __len__(self) -> int:
        return len({name for name, _ in self._raw})

    def getlist(self, key: str) -> list[str]:
        """Every value of ``key``, in order (empty list if absent)."""
        wanted = _to_bytes(key).lower()
        return [v.decode("latin-1") for n, v in self._raw if n == wanted]

    def multi_items(self) -> list[tuple[str, str]]:
        """Every ``(name, value)`` pair as text, duplicates included."""
        return [(n.decode("latin-1"), v.decode("latin-1")) for n, v in self._raw]

    def mutablecopy(self) -> MutableHeaders:
        """A :class:`MutableHeaders` with the same pairs."""
        return MutableHeaders(raw=self._raw)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return sorted(self._raw) == sorted(other._raw)
        return super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.multi_items()!r})"


class MutableHeaders(Headers):
    """Headers a response builds; every value is checked when it is set."""

    __slots__ = ()

    def __setitem__(self, key: str, value: str) -> None:
        """Replace every value of ``key`` with ``value`` (kept at the first position)."""
        name, raw_value = encode_header(key, value)
        index = next((i for i, (n, _) in enumerate(self._raw) if n == name), None)
        self._raw = [(n, v) for n, v in self._raw if n != name]
        self._raw.insert(len(self._raw) if index is None else index, (name, raw_value))

    def __delitem__(self, key: str) -> None:
        name = _to_bytes(key).lower()
        if not any(n == name for n, _ in self._raw):
            raise KeyError(key)
        self._raw = [(n, v) for n, v in self._raw if n != name]

    def append(self, key: str, value: str) -> None:
        """Add one more ``key: value`` pair (for repeatable headers like Set-Cookie)."""
        self._raw.append(encode_header(key, value))

    def setdefault(self, key: str, value: str) -> str:
        """Set ``key`` only if absent; return the value now in effect."""
        if key in self:
            return self[key]
        self.append(key, value)
        return value

    def pop(self, key: str, default: str | None = None) -> str | None:
        """Remove every value of ``key``; return the first one (or ``default``)."""
        if key not in self:
            return default
        first = self[key]
        del self[key]
        return first

    def update(self, other: HeaderInput) -> None:
        """Replace the names present in ``other`` with its values."""
        pairs = _pairs(other)
        for name in {n for n, _ in pairs}:
            self._raw = [(n, v) for n, v in self._raw if n != name]
        self._raw.extend(pairs)

    def add_vary(self, field: str) -> None:
        """Add ``field`` to ``Vary`` unless it is already listed."""
        current = [v.strip() for v in ",".join(self.getlist("vary")).split(",") if v.strip()]
        if field.lower() not in (v.lower() for v in current):
            self["vary"] = ", ".join([*current, field])
