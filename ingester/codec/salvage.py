"""The second chance of a log file msgspec refused: find its records by brackets and quotes alone.

Why: msgspec validates every byte of the envelope, so one record with a lone surrogate escape (``"\\ud800"``), a
raw control character in a string or nesting deeper than the recursion limit fails the whole file, and one bad
record would cost the file's good ones. This splitter cuts the ``Records`` array at its top-level commas with a
lexer that knows only strings and brackets: no escape or UTF-8 validation, no recursion (depth is a counter), so
none of those failures stop it. Each slice is then decoded on its own by the record decoder, which accepts the
good records and rejects the bad one alone.

It runs only after the envelope decode failed, so the hot path never pays for it (regexes over the file, ~3 s
for 75 MB of JSON). It refuses (returns None) what cannot be cut reliably: an unterminated string, unbalanced
brackets, bytes outside the top-level object, no ``"Records": [`` at the top level. That is what a truncated
or corrupt file looks like, and the caller reports it as such.
"""

from __future__ import annotations

import re
from typing import Final

from msgspec import Raw

# A whole string (escapes skipped pairwise; the closing quote captured, so a missing one is seen), or one of the
# structural characters. Anything else (numbers, literals, whitespace) lies between tokens and is not looked at.
_TOKEN: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(")?|[{}\[\],:]', re.DOTALL)
# Inside a record only brackets count: one match runs over everything up to the next bracket outside a string,
# strings included, so a record costs a Python iteration per bracket, not per token. The bracket is optional, so
# the match never backtracks; without it, the data or a string ended first.
_TO_BRACKET: Final = re.compile(rb'(?:[^"{}\[\]]+|"[^"\\]*(?:\\.[^"\\]*)*")*([{}\[\]])?', re.DOTALL)
_JSON_WHITESPACE: Final = b" \t\n\r"
_RECORDS_KEY: Final = b'"Records"'
_OPEN: Final = frozenset(b"{[")
_CLOSE: Final = frozenset(b"}]")


def split_leniently(data: bytes) -> list[Raw] | None:
    """The elements of the top-level ``"Records"`` array as Raw slices (whitespace trimmed, as msgspec cuts
    them), valid JSON or not; None when the file's structure itself is broken. A duplicated key: the last
    array wins, as in msgspec."""
    body = data.strip(_JSON_WHITESPACE)
    if body[:1] != b"{":
        return None
    depth = 0  # 0 outside, 1 in the envelope, 2 in an array or object of the envelope (Records); no deeper
    key_state = 0  # 1: just saw "Records" at depth 1; 2: and then its colon
    found: list[Raw] | None = None
    elements: list[Raw] | None = None  # the Records array being cut, while inside it
    start = position = 0
    search = _TOKEN.search
    while (match := search(body, position)) is not None:
        position = match.end()
        first = body[match.start()]
        if first == 0x22:  # '"'
            if match.start(1) < 0:
                return None  # unterminated string: truncated or corrupt
            key_state = 1 if depth == 1 and body[match.start() : position] == _RECORDS_KEY else 0
            continue
        if first in _OPEN:
            if depth == 2:  # a record (or a value of another envelope member): skip it whole
                position = _value_end(body, position)
                if position < 0:
                    return None
            else:
                if depth == 1 and key_state == 2 and first == 0x5B:  # '[' after "Records":
                    elements, start = [], position
                depth += 1
        elif first in _CLOSE:
            depth -= 1
            if depth == 1 and elements is not None:
                last = body[start : match.start()].strip(_JSON_WHITESPACE)
                if last or elements:
                    elements.append(Raw(last))
                found, elements = elements, None
            elif depth == 0:  # the top-level object ends here: nothing may follow it
                return found if position == len(body) else None
        elif first == 0x2C and depth == 2 and elements is not None:  # ','
            elements.append(Raw(body[start : match.start()].strip(_JSON_WHITESPACE)))
            start = position
        key_state = 2 if key_state == 1 and first == 0x3A else 0  # ':'
    return None  # the top-level object never ended: truncated


def _value_end(body: bytes, position: int) -> int:
    """From just after an opening bracket, the end of its closing one, brackets counted whatever their kind (a
    mismatch is the record decoder's to report); -1 when the data or a string ends first."""
    depth = 1
    to_bracket = _TO_BRACKET.match
    while (match := to_bracket(body, position)) is not None and match.start(1) >= 0:
        position = match.end()
        if body[match.start(1)] in _OPEN:
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                return position
    return -1
