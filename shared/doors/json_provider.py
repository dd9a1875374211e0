"""Flask's JSON answers written by orjson, with the same values Flask's own provider writes.

Every answer of the HTTP door is JSON, and on the scoring path the standard library's encoder was one of
three encodings of each decision (the answer, the log line, the store). orjson writes the same JSON values
several times faster: keys sorted as Flask sorts them, dates, dataclasses and whatever orjson does not
know handed to Flask's own `default` (so a date is still an HTTP date), and anything orjson refuses (an
integer beyond 64 bits, keys of mixed types) written by Flask's provider instead. Two differences in the
bytes, none in the values: non-ASCII text is written as UTF-8 rather than escaped, and a NaN or infinity
(never in a decision) becomes null rather than a literal that JSON parsers refuse.

Request bodies are still read by the standard library: orjson would read an integer beyond 64 bits as a
float, which a contract would then judge differently.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask.json.provider import DefaultJSONProvider

_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_PASSTHROUGH_DATETIME  # Flask writes dates as HTTP dates, orjson as RFC 3339
    | orjson.OPT_PASSTHROUGH_DATACLASS
)


class OrjsonProvider(DefaultJSONProvider):
    """`app.json = OrjsonProvider(app)`: compact answers by orjson; indented ones (debug) by Flask's own."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        if kwargs.keys() <= {"separators"} and kwargs.get("separators", (",", ":")) == (",", ":"):
            try:
                return orjson.dumps(obj, default=self.default, option=_OPTIONS).decode()
            except (orjson.JSONEncodeError, TypeError):
                pass  # Flask's provider decides: the same text, or the same error
        return super().dumps(obj, **kwargs)
