"""Reading an answer's header block as ``http.client`` reads it, for less: ``parse_headers``, and
``_Answer``, http.client's response class with it (and a negative chunk size refused).
Gateway answers and the web server's requests are read through it."""

from __future__ import annotations

import email.parser
import http.client
import re
import types
from typing import Any

# http.client's bounds on a header block: the length of a line, and the lines (with the blank
# line that ends the block).
_MAX_LINE = 65536
_MAX_LINES = 100
# A header line the email package's parser reads as one plain ``name: value`` field: a name of
# printable ASCII but the colon, and no line break but the one that ends the line.
_PLAIN_FIELD = re.compile(r"([!-9;-~]+):[ \t]*([^\r\n]*)\r?\n")


def parse_headers(fp: Any, _class: type[http.client.HTTPMessage] = http.client.HTTPMessage) -> Any:
    """What ``http.client.parse_headers`` returns, read within the same bounds, without the
    email package's feed parser where every line is a plain ``name: value`` field (as in every
    answer of a gateway, and every scrape's request): that parser costs tens of microseconds
    for four fields, on every request. Any other block (a folded line, a line without a name) goes to
    the stdlib's parser, so it reads exactly as before."""
    lines = []
    while True:
        line = fp.readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE:
            raise http.client.LineTooLong("header line")
        lines.append(line)
        if len(lines) > _MAX_LINES:
            raise http.client.HTTPException(f"got more than {_MAX_LINES} headers")
        if line in (b"\r\n", b"\n", b""):
            break
    fields = []
    for line in lines[:-1]:
        plain = _PLAIN_FIELD.fullmatch(line.decode("iso-8859-1"))
        if plain is None:
            return email.parser.Parser(_class=_class).parsestr(b"".join(lines).decode("iso-8859-1"))
        fields.append(plain.groups())
    message = _Fields() if _class is http.client.HTTPMessage else _class()
    message._headers = fields
    message.set_payload("")  # as the stdlib's parser leaves it: no body follows a header block
    return message


class _Fields(http.client.HTTPMessage):
    """The header block ``parse_headers`` read line by line, read back without the email
    package's policy call per field, which every lookup pays (http.client reads four headers of
    each answer, urllib3 and requests read them all, the cookie jar two, the web server eight
    of each scrape): its compat32 policy hands a value back as it is unless it holds
    surrogates, and text decoded from latin-1 never does. A lookup by name finds the fields'
    places in an index by lower-case name, made at the first lookup and made again whenever
    the fields were added or taken away (a replaced value keeps its place, and is read there)."""

    def _places(self, name: str) -> list[int]:
        fields = self._headers
        kept = self.__dict__.get("_index")
        if kept is None or kept[0] is not fields or kept[1] != len(fields):
            index: dict[str, list[int]] = {}
            for place, (key, _) in enumerate(fields):
                index.setdefault(key.lower(), []).append(place)
            kept = self._index = (fields, len(fields), index)
        return kept[2].get(name.lower(), [])

    def get(self, name: str, failobj: Any = None) -> Any:
        places = self._places(name)
        return self._headers[places[0]][1] if places else failobj

    def __getitem__(self, name: str) -> Any:
        return self.get(name)

    def __contains__(self, name: str) -> bool:  # type: ignore[override]
        return bool(self._places(name))

    def get_all(self, name: str, failobj: Any = None) -> Any:
        fields = self._headers
        return [fields[place][1] for place in self._places(name)] or failobj

    def items(self) -> list[tuple[str, str]]:
        return list(self._headers)

    def values(self) -> list[str]:
        return [value for _, value in self._headers]


def with_cheap_headers(function: Any) -> Any:
    """A copy of a stdlib function that reads a header block (``http.client.HTTPResponse.begin``,
    ``http.server.BaseHTTPRequestHandler.parse_request``) calling ``parse_headers`` above where
    it called http.client's: the stdlib's own code, with that one name bound otherwise in the
    copy's globals. Nothing of the process changes; any other caller keeps the stdlib's."""
    client = types.SimpleNamespace(**{**vars(http.client), "parse_headers": parse_headers})
    names = {**function.__globals__, "parse_headers": parse_headers}
    names["http"] = types.SimpleNamespace(client=client)
    return types.FunctionType(
        function.__code__, names, function.__name__, function.__defaults__, function.__closure__
    )


class _Answer(http.client.HTTPResponse):
    """http.client's response, its header block read by ``parse_headers`` above, and a
    negative chunk size refused."""

    begin = with_cheap_headers(http.client.HTTPResponse.begin)

    def _read_next_chunk_size(self) -> int:
        # int() takes a sign, and http.client reads "the next -1 bytes" as all there is until
        # the connection closes, in one read, past any bound. As any other size that is not
        # one: the connection closed, and the answer cut short (IncompleteRead).
        size: int = super()._read_next_chunk_size()  # type: ignore[misc]
        if size < 0:
            self._close_conn()  # type: ignore[attr-defined]
            raise ValueError(f"negative chunk size {size}")
        return size
