"""A parsed Hurl file: what `radar.hurl.parse_hurl` returns and the runner executes.

Every value the user wrote that may hold `{{variables}}` is a `Template`; line and column are
1-based positions in the file, kept so that a failed assert or an undefined variable is
reported as `FILE:LINE:COL`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Union


@dataclass(frozen=True)
class Placeholder:
    """`{{name}}` inside a template."""

    name: str
    line: int
    column: int


@dataclass(frozen=True)
class Template:
    """Literal text and placeholders, in order; rendered by `radar.template.render`."""

    parts: tuple[str | Placeholder, ...]
    line: int = 0
    column: int = 0

    @classmethod
    def literal(cls, text: str, line: int = 0, column: int = 0) -> Template:
        return cls((text,) if text else (), line, column)

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(part.name for part in self.parts if isinstance(part, Placeholder))


@dataclass(frozen=True)
class KeyValue:
    """A header, a query parameter, a form field or a cookie: `name: value`."""

    name: Template
    value: Template
    line: int
    column: int


@dataclass(frozen=True)
class Body:
    """A request or response body.

    kind: `json` (JSON text with templates inside strings and as values), `xml`, `text`
    (a multi-line string ``` or a one-line `string`), `base64`/`hex` (bytes given as text,
    already decoded into `data`), `file` is not supported.
    """

    kind: Literal["json", "xml", "text", "bytes"]
    text: Template | None = None
    data: bytes | None = None
    line: int = 0
    column: int = 0


@dataclass(frozen=True)
class Options:
    """`[Options]`: only those that change how a step runs; `variables` are set before it."""

    retry: int = 0  # extra attempts when the asserts fail (-1: until they pass, bounded)
    retry_interval_ms: int = 1000
    delay_ms: int = 0
    variables: tuple[KeyValue, ...] = ()


@dataclass(frozen=True)
class Request:
    method: str
    url: Template
    headers: tuple[KeyValue, ...] = ()
    query: tuple[KeyValue, ...] = ()
    form: tuple[KeyValue, ...] = ()
    cookies: tuple[KeyValue, ...] = ()
    basic_auth: KeyValue | None = None
    body: Body | None = None
    options: Options = field(default_factory=Options)
    line: int = 0
    column: int = 0


@dataclass(frozen=True)
class Query:
    """What an assert or capture looks at.

    kind: status, version, url, header, cookie, body, bytes, sha256, md5, jsonpath, regex,
    duration. `argument` is the header or cookie name, the JSONPath expression or the regex
    (a Template, or a `Regex` for `/.../` literals).
    """

    kind: str
    argument: Template | Regex | None = None
    line: int = 0
    column: int = 0


@dataclass(frozen=True)
class Regex:
    """A `/pattern/` literal (Python `re` syntax, as close to Rust's regex as Hurl's are)."""

    pattern: str


@dataclass(frozen=True)
class Filter:
    """A filter between the query and the predicate; only `count` is supported."""

    name: str
    line: int = 0
    column: int = 0


PredicateValue = Union[Template, Placeholder, int, float, bool, None, bytes, Regex]


@dataclass(frozen=True)
class Predicate:
    """name: == != > >= < <= contains startsWith endsWith matches exists isInteger isFloat
    isString isBoolean isCollection isEmpty. `value` is None for those that take none; a quoted
    string is a Template, `null` is the `NULL` sentinel below, a bare `{{name}}` is a Placeholder
    (compared with the variable's value as it is, so a captured number stays a number)."""

    name: str
    negated: bool = False
    value: PredicateValue = None
    line: int = 0
    column: int = 0


class _Null:
    """Hurl's `null` literal, distinct from "no value"."""

    _instance: _Null | None = None

    def __new__(cls) -> _Null:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "null"


NULL = _Null()


@dataclass(frozen=True)
class Assert:
    query: Query
    filters: tuple[Filter, ...]
    predicate: Predicate
    line: int
    column: int
    text: str = ""  # the assert as written in the file (without its comment), shown in results


@dataclass(frozen=True)
class Capture:
    name: str
    query: Query
    filters: tuple[Filter, ...]
    line: int
    column: int


@dataclass(frozen=True)
class Response:
    """`HTTP <status>` (status None for `HTTP *`), implicit header asserts, explicit sections."""

    version: str | None  # "HTTP", "HTTP/1.1", "HTTP/2"...; "HTTP" matches any
    status: int | None
    headers: tuple[KeyValue, ...] = ()
    captures: tuple[Capture, ...] = ()
    asserts: tuple[Assert, ...] = ()
    body: Body | None = None
    line: int = 0
    column: int = 0


@dataclass(frozen=True)
class Entry:
    request: Request
    response: Response | None = None

    @property
    def line(self) -> int:
        return self.request.line


@dataclass(frozen=True)
class HurlFile:
    entries: tuple[Entry, ...]
    filename: str = "<text>"
