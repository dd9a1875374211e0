"""The context fields a ZEN condition reads, found from its tokens.

zen-engine's Python binding compiles and evaluates expressions but exposes neither their tokens nor their
syntax tree, so a condition's field references are found here by tokenizing it by ZEN's lexical rules
(zen-expression's lexer, as documented in its syntax reference) and reading the few token patterns that
name a field. This is a tokenizer, not a parser: it is only run on a condition ZEN has already compiled,
so it never has to report a syntax error, and it only has to tell a field reference from everything else:

- an identifier starts a reference, followed by `.name` or `['name']` steps (`event.amount`, `a['b']`);
  `$root.x` is the root field `x`; a computed step (`a[0]`, `a[k]`) ends the path where it stands;
- it is not a reference when it is a keyword (`and`, `or`, `not`, `in`, `true`, `false`, `null`), a
  function's name (`len(`), a method's name (`d(x).year(`), an object literal's key (`{key: ...}`), the
  closure element `#` and its fields (`#.amount`), the closure context `$`, or a name the expression binds
  itself: a closure alias (`map(xs as x, x.a)`) or an assignment's target (`a = 1; a + 1`);
- strings ('...' and "...", no escapes in ZEN) are skipped; template strings (`text ${expression}`) are
  read for the references of their expressions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

KEYWORDS: Final = frozenset({"and", "or", "not", "in", "true", "false", "null"})
_ALPHA: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz$_#")
_ALPHANUMERIC: Final = _ALPHA | frozenset("0123456789")
_DIGITS: Final = frozenset("0123456789")
_SPACE: Final = frozenset(" \n\t")
_DOUBLE: Final = {".": ".", "?": "?", "=": "=", "<": "=", ">": "=", "!": "="}  # `..`, `??`, `==`, `<=`, ...
_CLOSURE_ALIAS: Final = "as"


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "name", "string", "number", "symbol" (operators and brackets), "end" (of a template part)
    text: str
    position: int


@dataclass(frozen=True, slots=True)
class Reference:
    """A field the expression reads: its path from the context's root, as written."""

    path: tuple[str, ...]
    position: int

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


def tokens(expression: str) -> list[Token]:
    """The expression's tokens by ZEN's lexical rules, template strings' expressions inlined (each part
    closed by an "end" token, so no path runs from one part into the next)."""
    return _Scanner(expression).scan()


def references(expression: str) -> list[Reference]:
    """Every context field a compiled ZEN expression reads, in order of appearance."""
    found = tokens(expression)
    bound = _bound_names(found)
    out: list[Reference] = []
    open_brackets: list[str] = []
    index = 0
    while index < len(found):
        token = found[index]
        if token.kind == "symbol" and token.text in "([{":
            open_brackets.append(token.text)
        elif token.kind == "symbol" and token.text in ")]}" and open_brackets:
            open_brackets.pop()
        if token.kind != "name" or not _starts_reference(found, index, open_brackets, bound):
            index += 1
            continue
        path, index = _path_from(found, index)
        if path:
            out.append(Reference(tuple(path), token.position))
    return out


def _starts_reference(found: list[Token], index: int, open_brackets: list[str], bound: frozenset[str]) -> bool:
    """Whether the name at `index` is the start of a context field's path."""
    token = found[index]
    previous = found[index - 1] if index else None
    following = found[index + 1] if index + 1 < len(found) else None
    if token.text in KEYWORDS or token.text == "$" or token.text.startswith("#") or token.text in bound:
        return False
    if previous is not None and previous.kind == "symbol" and previous.text == ".":
        return False  # a step of a path (or a method) already read from its start
    if following is not None and following.kind == "symbol" and following.text == "(":
        return False  # a function's name
    if token.text == _CLOSURE_ALIAS and following is not None and following.kind == "name":
        return False  # `xs as x`: `as` introduces the alias
    is_key_position = previous is not None and previous.kind == "symbol" and previous.text in "{,"
    followed_by_colon = following is not None and following.kind == "symbol" and following.text == ":"
    return not (open_brackets and open_brackets[-1] == "{" and is_key_position and followed_by_colon)


def _path_from(found: list[Token], index: int) -> tuple[list[str], int]:
    """The path starting at the name at `index` (empty for `$root` alone), and the index after it."""
    first = found[index].text
    path = [] if first == "$root" else [first]
    index += 1
    while index < len(found):
        step = found[index]
        if _is_symbol(step, ".") and index + 1 < len(found) and found[index + 1].kind in ("name", "number"):
            if index + 2 < len(found) and _is_symbol(found[index + 2], "("):
                break  # a method call on the value: the path ends before it
            path.append(found[index + 1].text)
            index += 2
        elif (
            _is_symbol(step, "[")
            and index + 2 < len(found)
            and found[index + 1].kind == "string"
            and _is_symbol(found[index + 2], "]")
        ):
            path.append(found[index + 1].text)
            index += 3
        else:
            break  # a computed step, an operator or the end: the path is what was read
    return path, index


def _bound_names(found: list[Token]) -> frozenset[str]:
    """Names the expression binds itself: closure aliases (`xs as x`) and assignment targets (`a.b = 1;`)."""
    names = set()
    for index, token in enumerate(found):
        following = found[index + 1] if index + 1 < len(found) else None
        is_alias = token.kind == "name" and token.text == _CLOSURE_ALIAS and index > 0
        if is_alias and following is not None and following.kind == "name" and not _is_symbol(found[index - 1], "."):
            names.add(following.text)
        if _is_symbol(token, "=") and index > 0:
            start = index - 1  # walk back over the target's `.name` steps to its first name
            while start >= 2 and _is_symbol(found[start - 1], ".") and found[start - 2].kind == "name":
                start -= 2
            if found[start].kind == "name":
                names.add(found[start].text)
    return frozenset(names)


def _is_symbol(token: Token, text: str) -> bool:
    return token.kind == "symbol" and token.text == text


class _Scanner:
    """ZEN's lexer, reduced to what finding references needs (token kinds and texts, not operator kinds)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.at = 0
        self.out: list[Token] = []

    def scan(self) -> list[Token]:
        while self.at < len(self.source):
            self._token()
        return self.out

    def _token(self) -> None:
        char = self.source[self.at]
        if char in _SPACE:
            self.at += 1
        elif char in "'\"":
            self._string(char)
        elif char == "`":
            self._template()
        elif char in _DIGITS:
            self._number()
        elif char in _ALPHA:
            self._name()
        elif char in _DOUBLE and self.source.startswith(char + _DOUBLE[char], self.at):
            self._push("symbol", char + _DOUBLE[char], 2)
        else:  # single-character operators and brackets (anything else ZEN would have refused already)
            self._push("symbol", char, 1)

    def _push(self, kind: str, text: str, width: int) -> None:
        self.out.append(Token(kind, text, self.at))
        self.at += width

    def _string(self, quote: str) -> None:
        end = self.source.find(quote, self.at + 1)
        end = len(self.source) if end < 0 else end
        self.out.append(Token("string", self.source[self.at + 1 : end], self.at))
        self.at = end + 1

    def _template(self) -> None:
        """A template string: its text skipped, the tokens of each `${...}` part kept, then an "end" token.
        As in ZEN's lexer, a part ends at the first `}` that starts a token."""
        self.at += 1
        while self.at < len(self.source) and self.source[self.at] != "`":
            if self.source.startswith("${", self.at):
                self.at += 2
                while self.at < len(self.source) and self.source[self.at] != "}":
                    self._token()
                self.out.append(Token("end", "}", self.at))
            self.at += 1
        self.at += 1

    def _number(self) -> None:
        start, fraction = self.at, False
        self.at += 1
        while self.at < len(self.source) and (self.source[self.at] in _DIGITS or self.source[self.at] in "_."):
            if self.source[self.at] == ".":
                if fraction or self.source.startswith("..", self.at):
                    break  # a second dot, or a range `1..5`
                fraction = True
            self.at += 1
        if self.at < len(self.source) and self.source[self.at] == "e":
            exponent = self.at + 1 + (self.at + 1 < len(self.source) and self.source[self.at + 1] in "+-")
            digits = exponent
            while digits < len(self.source) and self.source[digits] in _DIGITS:
                digits += 1
            if digits > exponent:
                self.at = digits
        self.out.append(Token("number", self.source[start : self.at], start))

    def _name(self) -> None:
        start = self.at
        while self.at < len(self.source) and self.source[self.at] in _ALPHANUMERIC:
            self.at += 1
        self.out.append(Token("name", self.source[start : self.at], start))
