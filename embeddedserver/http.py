"""HTTP/1.1 for scripts: read a request, check it, answer it (or misbehave), in HTTP's terms.

Model
-----
``ReadRequest()`` is a read step that takes one whole request: request line, headers and
a body framed by ``Content-Length`` or ``Transfer-Encoding: chunked`` (trailers too), or
none. Its chunk (in ``received`` and the transcript) is the request's bytes as sent. A
request that is not HTTP/1.1 fails at the line that is wrong, with the reason in HTTP's
terms; ``embeddedserver.httpmessage`` holds the reader and the parsed ``Request``.

``ExpectRequest(method, path, query=, headers=, body=, json=, where=)`` reads a request
the same way and checks it: the head as soon as it has ended (so a wrong request fails
without waiting for a body it may never send), the body at its end. Every difference is
listed ("expected POST /items, got GET /items"; "header Content-Type: expected
'application/json', got 'text/plain'"; "missing header Host"). The same checks, as
``match(...)``, are a predicate for a ``Rule``: ``Rules(ReadRequest(), Rule(match(
method="GET", path="/a"), response("a", keep_alive=True)))`` answers requests in any
order on one connection or many, and a request no rule takes is shown with how it
differs from each rule.

``response(...)`` builds the steps of one response: the status line, headers (with
``Content-Length``, or ``Transfer-Encoding: chunked``), the body in one write or streamed
(``chunked=``, ``interval=``), and misbehaviours: headers dripped (``slow_headers=``), a
``Content-Length`` that lies (``content_length=``), a malformed chunk, no final chunk.
``serve(n, reply)`` repeats a request and its reply on one connection (keep-alive).

Sections: what a request must be - the read steps - responses.
"""

from __future__ import annotations

import json as _json
import re
from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from typing import TypeAlias

from . import _args
from ._text import bytes_pattern, callable_name
from .httpmessage import Request, RequestReader
from .record import show_bytes
from .rules import Reply
from .steps import Bytesish, Delay, ReadStep, Send, Step, compile_script

__all__ = [
    "BodyMatch",
    "ExpectRequest",
    "HeaderMatch",
    "ReadRequest",
    "RequestMatch",
    "match",
    "response",
    "serve",
]

#: What a header of a ``RequestMatch`` must be: the exact value (several lines of one
#: name: their values joined by ", "), a regex the value must match whole, or None:
#: the header must be absent.
HeaderMatch: TypeAlias = str | re.Pattern[str] | None
#: What a body must be: exact bytes (a str is UTF-8), a compiled regex searched in it
#: (anchor it with ``^`` and ``\\Z``), or a predicate ``func(body: bytes) -> bool``.
BodyMatch: TypeAlias = (
    bytes | str | re.Pattern[bytes] | re.Pattern[str] | Callable[[bytes], object]
)

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class _Unset:
    def __repr__(self) -> str:
        return "(not given)"


_NO_JSON: object = _Unset()

# ---------------------------------------------------------------------------
# what a request must be
# ---------------------------------------------------------------------------


def _differ_at(a: bytes, b: bytes) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                min(len(a), len(b)))


def _brief(value: object, limit: int) -> str:
    """A JSON value's repr for a message, cut to *limit* characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _one_or_list(values: list[str]) -> str:
    return repr(values[0]) if len(values) == 1 else repr(values)


class RequestMatch:
    """What a request must be; ``match(...)`` makes one, ``ExpectRequest`` holds one.

    Called with a request's bytes it answers whether they are a request that matches
    (False for a malformed one): a predicate for a ``Rule``, which then shows, for a
    request no rule takes, how it differs (``difference``) from this one.

    Arguments (each None: anything goes):
        method: ``"GET"``, compared exactly (methods are case-sensitive).
        path: the target's path as sent (percent-encoding kept), ``"/items"``, or a
            compiled regex it must match whole.
        query: the query parameters, exactly: ``{"a": "1"}``; a list for a name that
            repeats (``{"tag": ["x", "y"]}``); ``{}``: no query.
        headers: ``{name: HeaderMatch}``, names case-insensitive; headers not named may
            be there too.
        body: a ``BodyMatch``; json: the body parsed as JSON equals this (not both).
        where: a predicate ``func(request: Request) -> bool`` for the rest.
        version: ``"HTTP/1.1"`` or ``"HTTP/1.0"``.

    Raises TypeError/ValueError naming a bad argument.

    >>> m = match(method="GET", path="/a", headers={"Accept": "text/plain"})
    >>> m(b"GET /a HTTP/1.1\\r\\nHost: x\\r\\nAccept: text/plain\\r\\n\\r\\n")
    True
    >>> print(m.difference(b"GET /b HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n"))
    expected GET /a, got GET /b; missing header Accept (expected 'text/plain')
    """

    def __init__(
        self,
        method: str | None = None,
        path: str | re.Pattern[str] | None = None,
        *,
        query: Mapping[str, str | Sequence[str]] | None = None,
        headers: Mapping[str, HeaderMatch] | None = None,
        body: BodyMatch | None = None,
        json: object = _NO_JSON,
        where: Callable[[Request], object] | None = None,
        version: str | None = None,
    ) -> None:
        if method is not None and not (isinstance(method, str) and _TOKEN.fullmatch(method)):
            raise ValueError(f"method must be a token such as 'GET', not {method!r}")
        if isinstance(path, str):
            if "?" in path:
                raise ValueError(f"path {path!r} has a query: give it as query={{...}}")
            if not (path.startswith("/") or path == "*" or ":" in path):
                raise ValueError(f"path {path!r} does not start with '/' (nor is it '*' or "
                                 "a CONNECT host:port)")
        elif isinstance(path, re.Pattern):
            if not isinstance(path.pattern, str):
                raise TypeError(f"a path regex is a str pattern, not {path!r}")
        elif path is not None:
            raise TypeError(f"path must be a str or a compiled regex, not {path!r}")
        self.method = method
        self.path = path
        self.query = None if query is None else self._check_query(query)
        self.headers = None if headers is None else self._check_headers(headers)
        self.exact: bytes | None = None
        self.pattern: re.Pattern[bytes] | None = None
        self.predicate: Callable[[bytes], object] | None = None
        if isinstance(body, (bytes, bytearray, memoryview, str)):
            self.exact = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        elif isinstance(body, re.Pattern):
            self.pattern = bytes_pattern(body)
        elif callable(body):
            self.predicate = body
        elif body is not None:
            raise TypeError(f"body must be bytes, str, a compiled regex or a predicate "
                            f"func(body) -> bool, not {body!r}")
        if json is not _NO_JSON:
            if body is not None:
                raise ValueError("give body= or json=, not both")
            try:
                _json.dumps(json)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"json must be a JSON value, not {json!r} ({exc})") from None
        self.json = json
        if where is not None and not callable(where):
            raise TypeError(f"where must be a predicate func(request) -> bool, not {where!r}")
        self.where = where
        if version not in (None, "HTTP/1.1", "HTTP/1.0"):
            raise ValueError(f"version must be 'HTTP/1.1' or 'HTTP/1.0', not {version!r}")
        self.version = version

    @staticmethod
    def _check_query(query: Mapping[str, str | Sequence[str]]) -> dict[str, list[str]]:
        if not isinstance(query, Mapping):
            raise TypeError(f"query must be a dict of names to values, not {query!r}")
        checked: dict[str, list[str]] = {}
        for name, value in query.items():
            values = [value] if isinstance(value, str) else (
                list(value) if isinstance(value, (list, tuple)) else [])
            if not isinstance(name, str) or not values or not all(
                    isinstance(v, str) for v in values):
                raise TypeError(f"query {name!r}: give a str value or a non-empty list "
                                f"of them, not {value!r}")
            checked[name] = values
        return checked

    @staticmethod
    def _check_headers(headers: Mapping[str, HeaderMatch]) -> tuple[tuple[str, HeaderMatch], ...]:
        if not isinstance(headers, Mapping):
            raise TypeError(f"headers must be a dict of names to values, not {headers!r}")
        for name, value in headers.items():
            if not (isinstance(name, str) and _TOKEN.fullmatch(name)):
                raise ValueError(f"header name {name!r} is not a token such as 'Content-Type'")
            if value is not None and not isinstance(value, str) and not (
                    isinstance(value, re.Pattern) and isinstance(value.pattern, str)):
                raise TypeError(f"header {name}: give a str, a compiled str regex, or None "
                                f"(absent), not {value!r}")
        return tuple(headers.items())

    # -- the checks ------------------------------------------------------------------

    def head_differences(self, request: Request) -> list[str]:
        """How the request line and headers of *request* differ from this match."""
        found = []
        method_ok = self.method is None or request.method == self.method
        if isinstance(self.path, re.Pattern):
            want_path = f"a path matching {self.path.pattern!r}"
        else:
            want_path = self.path or request.path
        if not (method_ok and self._path_ok(request.path)):
            found.append(f"expected {self.method or request.method} {want_path}, "
                         f"got {request.method} {request.path}")
        if self.version is not None and request.version != self.version:
            found.append(f"expected {self.version}, got {request.version}")
        if self.query is not None:
            for name, want in self.query.items():
                got = request.query.get_all(name)
                if not got:
                    found.append(f"missing query parameter {name} (expected "
                                 f"{_one_or_list(want)})")
                elif got != want:
                    found.append(f"query parameter {name}: expected {_one_or_list(want)}, "
                                 f"got {_one_or_list(got)}")
            found.extend(
                f"unexpected query parameter {name}={_one_or_list(request.query.get_all(name))}"
                for name in request.query if name not in self.query)
        for name, value in self.headers or ():
            problem = self._header_problem(name, value, request)
            if problem is not None:
                found.append(problem)
        return found

    def _header_problem(self, name: str, value: HeaderMatch, request: Request) -> str | None:
        if name not in request.headers:
            return None if value is None else f"missing header {name} (expected {self._say(value)})"
        sent = request.headers[name]
        if value is None:
            return f"header {name}: expected absent, got {sent!r}"
        if isinstance(value, str) and sent != value:
            return f"header {name}: expected {value!r}, got {sent!r}"
        if isinstance(value, re.Pattern) and not value.fullmatch(sent):
            return f"header {name}: expected {self._say(value)}, got {sent!r}"
        return None

    @staticmethod
    def _say(value: str | re.Pattern[str]) -> str:
        return repr(value) if isinstance(value, str) else f"a value matching {value.pattern!r}"

    def body_differences(self, request: Request) -> list[str]:
        """How the body of *request* differs, and whether ``where`` refuses it."""
        found = []
        body = request.body
        if self.exact is not None and body != self.exact:
            at = _differ_at(body, self.exact)
            found.append(f"body: expected {show_bytes(self.exact, 60)} ({len(self.exact)} "
                         f"bytes), got {show_bytes(body, 60)} ({len(body)} bytes), "
                         f"first difference at byte {at}")
        elif self.pattern is not None and not self.pattern.search(body):
            found.append(f"body: expected a match for re.compile({self.pattern.pattern!r}), "
                         f"got {show_bytes(body, 60)}")
        elif self.predicate is not None and not self.predicate(body):
            found.append(f"body: {callable_name(self.predicate)} returned False for "
                         f"{show_bytes(body, 60)}")
        elif self.json is not _NO_JSON:
            try:
                got = _json.loads(body)
            except ValueError as exc:
                found.append(f"body is not JSON ({exc}): {show_bytes(body, 60)}")
            else:
                if got != self.json:
                    found.append(f"body JSON: expected {_brief(self.json, 120)}, got "
                                 f"{_brief(got, 120)}")
        if self.where is not None and not self.where(request):
            found.append(f"{callable_name(self.where)} returned False for the request")
        return found

    def differences(self, request: Request) -> list[str]:
        """Every way *request* differs from this match (``[]``: it matches)."""
        return self.head_differences(request) + self.body_differences(request)

    def __call__(self, data: bytes) -> bool:
        """True if *data* is one request that matches."""
        try:
            request = Request.parse(data)
        except ValueError:
            return False
        return not self.differences(request)

    def difference(self, data: bytes) -> str:
        """How the request in *data* differs, in words (for a ``Rules`` report)."""
        try:
            request = Request.parse(data)
        except ValueError as exc:
            return f"not an HTTP request: {exc}"
        return "; ".join(self.differences(request)) or "matches"

    def similarity(self, data: bytes) -> float:
        """From 0 to 1: the share of this match's criteria the request in *data* meets
        (ranks the closest rules in a ``Rules`` report)."""
        try:
            request = Request.parse(data)
        except ValueError:
            return 0.0
        checks: list[bool] = []
        if self.method is not None:
            checks.append(request.method == self.method)
        if self.path is not None:
            checks.append(self._path_ok(request.path))
        if self.version is not None:
            checks.append(request.version == self.version)
        checks += [request.query.get_all(name) == values
                   for name, values in (self.query or {}).items()]
        checks += [self._header_problem(name, value, request) is None
                   for name, value in self.headers or ()]
        if self._checks_body() or self.where is not None:
            checks.append(not self.body_differences(request))
        return sum(checks) / len(checks) if checks else 1.0

    def _checks_body(self) -> bool:
        return (self.exact is not None or self.pattern is not None
                or self.predicate is not None or self.json is not _NO_JSON)

    def _path_ok(self, path: str) -> bool:
        if isinstance(self.path, re.Pattern):
            return self.path.fullmatch(path) is not None
        return self.path is None or path == self.path

    def describe(self) -> str:
        """The request in words, for failure messages."""
        target = self.path.pattern if isinstance(self.path, re.Pattern) else self.path
        text = f"{self.method or '(any method)'} {target or '(any path)'}"
        more = []
        if self.query is not None:
            more.append(f"query {self.query!r}")
        if self.headers:
            more.append("headers " + ", ".join(
                f"{n}: {'(absent)' if v is None else self._say(v)}" for n, v in self.headers))
        if self.exact is not None:
            more.append(f"body {show_bytes(self.exact, 60)}")
        elif self.pattern is not None or self.predicate is not None:
            more.append(f"a body {self._body_repr()}")
        elif self.json is not _NO_JSON:
            more.append(f"JSON body {_brief(self.json, 80)}")
        if self.where is not None:
            more.append(f"accepted by {callable_name(self.where)}")
        return text + (" with " + "; ".join(more) if more else "")

    def _body_repr(self) -> str:
        if self.exact is not None:
            return show_bytes(self.exact, 60)
        if self.pattern is not None:
            return f"re.compile({self.pattern.pattern!r})"
        assert self.predicate is not None
        return callable_name(self.predicate)

    def _args(self) -> list[str]:
        args = [f"{name}={value!r}" for name, value in (
            ("method", self.method), ("path", self.path), ("version", self.version),
            ("query", self.query)) if value is not None]
        if self.headers is not None:
            args.append(f"headers={dict(self.headers)!r}")
        if self.exact is not None or self.pattern is not None or self.predicate is not None:
            args.append(f"body={self._body_repr()}")  # json= has its own
        if self.json is not _NO_JSON:
            args.append(f"json={_brief(self.json, 60)}")
        if self.where is not None:
            args.append(f"where={callable_name(self.where)}")
        return args

    def __repr__(self) -> str:
        return f"match({', '.join(self._args())})"


def match(
    method: str | None = None,
    path: str | re.Pattern[str] | None = None,
    *,
    query: Mapping[str, str | Sequence[str]] | None = None,
    headers: Mapping[str, HeaderMatch] | None = None,
    body: BodyMatch | None = None,
    json: object = _NO_JSON,
    where: Callable[[Request], object] | None = None,
    version: str | None = None,
) -> RequestMatch:
    """What a request must be, as a predicate for a ``Rule`` (see ``RequestMatch``).

    >>> match("GET", "/a")
    match(method='GET', path='/a')
    """
    return RequestMatch(method, path, query=query, headers=headers, body=body, json=json,
                        where=where, version=version)


# ---------------------------------------------------------------------------
# the read steps
# ---------------------------------------------------------------------------


class ReadRequest(ReadStep):
    """Read one whole HTTP/1.1 request (a malformed one fails the step, in HTTP's terms);
    its chunk is the request's bytes. ``Request.parse(chunk)`` gives it parsed.

    >>> ReadRequest()
    ReadRequest()
    """

    def __init__(self, *, timeout: float | None = None) -> None:
        self.timeout = _args.optional_timeout(timeout)

    def _repr_args(self) -> list[str]:
        return self._timeout_arg()

    def describe(self) -> str:
        return "an HTTP/1.1 request"

    def matcher(self) -> RequestReader:
        return RequestReader(self.describe())


class _Checked(RequestReader):
    """The matcher of an ``ExpectRequest``: the reader, with the checks of its match."""

    def __init__(self, expected: str, criteria: RequestMatch) -> None:
        super().__init__(expected)
        self.criteria = criteria

    def on_head(self, head: Request) -> list[str]:
        return self.criteria.head_differences(head)

    def on_done(self, request: Request) -> list[str]:
        return self.criteria.body_differences(request)


class ExpectRequest(ReadRequest):
    """Read one request and check it (the arguments are ``RequestMatch``'s, or one
    ``RequestMatch`` made before): the head when it has ended, the body at the end;
    every difference fails the step, listed.

    >>> ExpectRequest("POST", "/items", json={"name": "ada"})
    ExpectRequest(method='POST', path='/items', json={'name': 'ada'})
    """

    expects_exactly = True

    def __init__(
        self,
        method: str | RequestMatch | None = None,
        path: str | re.Pattern[str] | None = None,
        *,
        query: Mapping[str, str | Sequence[str]] | None = None,
        headers: Mapping[str, HeaderMatch] | None = None,
        body: BodyMatch | None = None,
        json: object = _NO_JSON,
        where: Callable[[Request], object] | None = None,
        version: str | None = None,
        timeout: float | None = None,
    ) -> None:
        super().__init__(timeout=timeout)
        if isinstance(method, RequestMatch):  # ExpectRequest(match(...)): one made before
            given = [path, query, headers, body, where, version]
            if any(arg is not None for arg in given) or json is not _NO_JSON:
                raise TypeError("ExpectRequest(match(...)) takes no other criteria: put "
                                "them in the match")
            self.criteria = method
            return
        self.criteria = RequestMatch(method, path, query=query, headers=headers, body=body,
                                     json=json, where=where, version=version)

    def _repr_args(self) -> list[str]:
        return [*self.criteria._args(), *self._timeout_arg()]

    def describe(self) -> str:
        return f"an HTTP request {self.criteria.describe()}"

    def matcher(self) -> RequestReader:
        return _Checked(self.describe(), self.criteria)


# ---------------------------------------------------------------------------
# responses
# ---------------------------------------------------------------------------


def _bytes_of(value: Bytesish, what: str) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{what} must be bytes or str, not {value!r}")


def _parts(value: Bytesish | Sequence[Bytesish], what: str) -> list[bytes]:
    if isinstance(value, (bytes, bytearray, memoryview, str)):
        data = _bytes_of(value, what)
        return [data] if data else []
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{what} must be bytes, str or a list of them, not {value!r}")
    return [_bytes_of(part, f"{what} part {i}") for i, part in enumerate(value)]


def _header_pairs(
    headers: Mapping[str, str | None] | Sequence[tuple[str, str | None]] | None, what: str,
) -> list[tuple[str, str | None]]:
    if headers is None:
        return []
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    for pair in pairs:
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise TypeError(f"{what} must be a dict or a list of (name, value), not {headers!r}")
        name, value = pair
        if not (isinstance(name, str) and _TOKEN.fullmatch(name)):
            raise ValueError(f"{what}: name {name!r} is not a token such as 'Content-Type'")
        if value is not None and (not isinstance(value, str) or "\r" in value or "\n" in value):
            raise ValueError(f"{what} {name}: the value must be a str without CR or LF (or "
                             f"None: leave the header out), not {value!r}")
    return pairs


def _merge(defaults: list[tuple[str, str]], given: list[tuple[str, str | None]]
           ) -> list[tuple[str, str]]:
    """The default headers with the given ones: one of the same name (any case) takes
    the default's place (None removes it); the others follow, in order."""
    merged: list[tuple[str, str | None]] = list(defaults)
    for name, value in given:
        at = next((i for i, (n, _) in enumerate(merged) if n.lower() == name.lower()
                   and i < len(defaults)), None)
        if at is None:
            merged.append((name, value))
        else:
            merged[at] = (name, value)
    return [(n, v) for n, v in merged if v is not None]


def response(
    body: Bytesish | Sequence[Bytesish] = b"",
    status: int = 200,
    *,
    reason: str | None = None,
    headers: Mapping[str, str | None] | Sequence[tuple[str, str | None]] | None = None,
    keep_alive: bool = False,
    chunked: bool | Sequence[Bytesish] = False,
    trailers: Mapping[str, str] | None = None,
    interval: float = 0.0,
    slow_headers: float = 0.0,
    content_length: int | None = None,
    malformed_chunk: int | None = None,
    final_chunk: bool = True,
) -> list[Step]:
    """The steps of one HTTP/1.1 response: put them in a script (``[ReadRequest(),
    *response("hi")]``) or give them as a ``Rule``'s reply.

    Arguments:
        body: bytes or str (UTF-8); a list of them is streamed, one write each.
        status, reason: the status line (*reason* None: the standard phrase).
        headers: a dict or a list of (name, value), after the defaults; one named like a
            default (``Content-Length``, ``Transfer-Encoding``, ``Connection``, any case)
            replaces it, and None leaves it out (no ``Content-Length``: the body ends
            when the connection closes).
        keep_alive: False sends ``Connection: close``; True leaves it out (HTTP/1.1 keeps
            the connection open), for a client that sends another request.
        chunked: True sends the body (each part of a list one chunk) with
            ``Transfer-Encoding: chunked``; a list is the chunks themselves (then no body).
        trailers: header lines after the last chunk.
        interval: seconds between the writes of the body (streaming).
        slow_headers: seconds between the lines of the head: the head is dripped.
        content_length: the ``Content-Length`` to send instead of the body's length: a
            lie (longer: the client waits for more; shorter: it reads too little). With
            no body, the answer to a HEAD request.
        malformed_chunk: the index of a chunk whose size line is ``zz`` (not hex).
        final_chunk: False leaves out the final 0-size chunk: the body never ends.

    A 1xx, 204 or 304 status has no body and no length header. Raises TypeError or
    ValueError naming a bad argument.

    >>> [step.data for step in response("hi", keep_alive=True)]
    [b'HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nhi']
    """
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 999:
        raise ValueError(f"status must be an int from 100 to 999, not {status!r}")
    if reason is None:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
    elif not isinstance(reason, str) or "\r" in reason or "\n" in reason:
        raise ValueError(f"reason must be a str without CR or LF, not {reason!r}")
    keep_alive = _args.flag(keep_alive, "keep_alive")
    final_chunk = _args.flag(final_chunk, "final_chunk")
    interval = _args.duration(interval, "interval")
    slow_headers = _args.duration(slow_headers, "slow_headers")
    parts = _parts(body, "body")
    if isinstance(chunked, bool):
        is_chunked = chunked
    else:
        if parts:
            raise ValueError("give the body as body= or as chunked=[...], not both")
        parts, is_chunked = _parts(chunked, "chunked"), True
        if not parts:
            raise ValueError("chunked=[] has no chunk: give chunked=True for an empty body")
    if is_chunked and not all(parts):
        at = parts.index(b"")
        raise ValueError(f"chunk {at} is empty: a 0-size chunk is the end of the body "
                         "(final_chunk=True sends it)")
    if not is_chunked:
        for name, given in (("trailers", trailers), ("malformed_chunk", malformed_chunk),
                            ("final_chunk=False", None if final_chunk else False)):
            if given is not None:
                raise ValueError(f"{name} needs a chunked body (chunked=True or a list)")
    if malformed_chunk is not None and (isinstance(malformed_chunk, bool) or not isinstance(
            malformed_chunk, int) or not 0 <= malformed_chunk < len(parts)):
        raise ValueError(f"malformed_chunk must be the index of one of the {len(parts)} "
                         f"chunks, not {malformed_chunk!r}")
    if content_length is not None:
        content_length = _args.count(content_length, "content_length", 0)
    no_body = status < 200 or status in (204, 304)
    if no_body and (parts or is_chunked):
        raise ValueError(f"a {status} response has no body: give no body and no chunks")

    defaults: list[tuple[str, str]] = []
    if not no_body:
        if is_chunked:
            defaults.append(("Transfer-Encoding", "chunked"))
        if content_length is not None or not is_chunked:
            size = sum(map(len, parts)) if content_length is None else content_length
            defaults.append(("Content-Length", str(size)))
    if not keep_alive and status >= 200:
        defaults.append(("Connection", "close"))
    fields = _merge(defaults, _header_pairs(headers, "headers"))
    lines = [f"HTTP/1.1 {status} {reason}\r\n".encode("latin-1")]
    lines += [f"{name}: {value}\r\n".encode("latin-1") for name, value in fields]
    lines.append(b"\r\n")

    writes = parts
    if is_chunked:
        writes = [(b"zz" if i == malformed_chunk else b"%x" % len(part)) + b"\r\n" + part
                  + b"\r\n" for i, part in enumerate(parts)]
        if final_chunk:
            trailer_lines = [f"{n}: {v}\r\n".encode("latin-1")
                             for n, v in _header_pairs(trailers, "trailers") if v is not None]
            writes.append(b"0\r\n" + b"".join(trailer_lines) + b"\r\n")

    steps: list[Step] = []
    if slow_headers:
        for i, line in enumerate(lines):
            steps += [Delay(slow_headers), Send(line)] if i else [Send(line)]
    else:
        head = b"".join(lines)
        if len(writes) == 1 and not is_chunked:  # the usual case: one write
            return [Send(head + writes[0])]
        steps.append(Send(head))
    for i, data in enumerate(writes):
        if i and interval:
            steps.append(Delay(interval))
        steps.append(Send(data))
    return steps


def serve(requests: int | Sequence[ReadStep], reply: Reply) -> list[Step]:
    """Several requests on one connection, each answered by *reply*: *requests* is a
    count (that many ``ReadRequest()``) or the read steps (``ExpectRequest``...), and
    *reply* the steps of each answer (``response(..., keep_alive=True)``, so that the
    client sends the next request on the same connection).

    >>> len(serve(3, response("ok", keep_alive=True)))
    6
    """
    if isinstance(requests, int) and not isinstance(requests, bool):
        reads: list[ReadStep] = [ReadRequest() for _ in range(_args.count(requests,
                                                                           "requests", 1))]
    elif isinstance(requests, (list, tuple)) and requests and all(
            isinstance(r, ReadStep) for r in requests):
        reads = list(requests)
    else:
        raise TypeError(f"requests must be a count >= 1 or a list of read steps such as "
                        f"ExpectRequest(...), not {requests!r}")
    if isinstance(reply, (bytes, bytearray, memoryview, str)):
        answer: tuple[Step, ...] = (Send(reply),)
    else:
        answer = compile_script(reply)
    for i, step in enumerate(answer):
        if isinstance(step, ReadStep) or step.kind == "rules":
            raise ValueError(f"reply: command {i} ({step!r}) reads, but a reply only sends "
                             "or acts (serve reads each request)")
    steps: list[Step] = []
    for read in reads:
        steps += [read, *answer]
    return steps
