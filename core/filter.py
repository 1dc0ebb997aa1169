"""Display filters in Wireshark's syntax, parsed with lark.

    frame.number > 100 && expert.severity == "error"
    proto.type == 4 || !proto.session
    proto.peer.name in {"MODALITY" "CT01"} and Keyword == CT
    proto.uid contains "1.2.840"
    expert.message matches "reject|abort"

A filter is compiled against the names a caller knows and evaluated on a
dict ``name -> list of values`` (a field may occur several times): a
comparison holds if any occurrence satisfies it, ``!=`` is ``!(a == b)`` as
in Wireshark 4. The engine knows no protocol: callers give it names.
"""

from __future__ import annotations

import re
import warnings

from lark import Lark, Transformer, UnexpectedInput

GRAMMAR = r"""
?start: or_
?or_: and_ (("||" | "or") and_)*      -> any_
?and_: not_ (("&&" | "and") not_)*    -> all_
?not_: ("!" | "not") not_             -> neg
     | atom
?atom: "(" or_ ")"
     | FIELD OP value                 -> compare
     | FIELD "contains" value         -> contains
     | FIELD "matches" value          -> matches
     | FIELD "in" "{" value+ "}"      -> member
     | FIELD                          -> present
value: ESCAPED_STRING | BARE
OP: "==" | "!=" | "<=" | ">=" | "<" | ">" | "eq" | "ne" | "le" | "ge" | "lt" | "gt"
FIELD: /[A-Za-z_][A-Za-z0-9_.\-]*/
BARE: /[^\s(){}"!=<>&|]+/
%import common.ESCAPED_STRING
%import common.WS
%ignore WS
"""

_PARSER = Lark(GRAMMAR, parser="lalr", lexer="contextual")
_OPS = {"eq": "==", "ne": "!=", "le": "<=", "ge": ">=", "lt": "<", "gt": ">"}


class FilterError(ValueError):
    def __init__(self, msg, text="", column=None):
        where = f" at column {column}" if column else ""
        pointer = f"\n  {text}\n  {' ' * (column - 1)}^" if column else ""
        super().__init__(f"{msg}{where}{pointer}")
        self.column = column


def _literal(tok) -> object:
    s = str(tok)
    if tok.type == "ESCAPED_STRING":
        # Escapes as in Python/Wireshark strings (\" \\ \t \xhh \uhhhh ...).
        # Fix (found by fuzz/fuzz_filter.py): a malformed escape ("\x", "\N{")
        # escaped as a lark VisitError; and characters beyond ASCII came out
        # as mojibake (UTF-8 bytes decoded one by one). backslashreplace
        # keeps each character as itself or as a \u escape.
        try:
            with warnings.catch_warnings():
                # Unknown escapes ("\w" in a regular expression) stay as written.
                warnings.simplefilter("ignore", DeprecationWarning)
                return s[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")
        except UnicodeDecodeError as e:
            raise FilterError(f"bad escape in string: {e.reason}", column=tok.column) from None
    try:
        return int(s, 0)
    except ValueError:
        return s


def _num(v):
    if isinstance(v, (int, float)):
        return v
    try:
        return int(str(v), 0)
    except ValueError:
        try:
            return float(v)
        except ValueError:
            return None


def _equal(a, b) -> bool:
    if isinstance(b, (int, float)):
        na = _num(a)
        return na is not None and na == b
    return str(a).strip() == str(b)


def _order(a, op, b) -> bool:
    na, nb = _num(a), _num(b)
    if na is not None and nb is not None:
        a, b = na, nb
    else:
        a, b = str(a), str(b)
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


class _Compile(Transformer):
    """Parse tree -> a predicate over {name: [values]}; collects field names."""

    def __init__(self, known):
        super().__init__()
        self.known = known
        self.fields = set()

    def _field(self, tok):
        name = str(tok)
        if self.known is not None and not self.known(name):
            raise FilterError(f"unknown field {name!r}", column=tok.column)
        self.fields.add(name)
        return name

    def value(self, items):
        return _literal(items[0])

    def any_(self, preds):
        return lambda v: any(p(v) for p in preds)

    def all_(self, preds):
        return lambda v: all(p(v) for p in preds)

    def neg(self, items):
        p = items[0]
        return lambda v: not p(v)

    def present(self, items):
        name = self._field(items[0])
        return lambda v: bool(v.get(name))

    def compare(self, items):
        name, op, want = self._field(items[0]), str(items[1]), items[2]
        op = _OPS.get(op, op)
        if op == "==":
            return lambda v: any(_equal(x, want) for x in v.get(name, ()))
        if op == "!=":
            return lambda v: not any(_equal(x, want) for x in v.get(name, ()))
        return lambda v: any(_order(x, op, want) for x in v.get(name, ()))

    def contains(self, items):
        name, want = self._field(items[0]), str(items[1])
        return lambda v: any(want in str(x) for x in v.get(name, ()))

    def matches(self, items):
        name = self._field(items[0])
        try:
            rx = re.compile(str(items[1]), re.IGNORECASE)
        except re.error as e:
            raise FilterError(f"bad regular expression: {e}") from None
        return lambda v: any(rx.search(str(x)) for x in v.get(name, ()))

    def member(self, items):
        name, wants = self._field(items[0]), items[1:]
        return lambda v: any(_equal(x, w) for x in v.get(name, ()) for w in wants)


class DisplayFilter:
    """A compiled filter: ``f(values) -> bool``; ``f.fields`` lists its names."""

    def __init__(self, text: str, known=None):
        self.text, self.known = text, known
        try:
            tree = _PARSER.parse(text)
        except UnexpectedInput as e:
            raise FilterError("syntax error", text, e.column) from None
        c = _Compile(known)
        try:
            self.predicate = c.transform(tree)
        except Exception as e:        # lark wraps transformer errors
            inner = getattr(e, "orig_exc", e)
            if isinstance(inner, FilterError):
                col = inner.column
                raise FilterError(str(inner).split(" at column")[0], text, col) from None
            raise
        self.fields = c.fields

    def __call__(self, values: dict) -> bool:
        return self.predicate(values)

    def __reduce__(self):
        # The predicate is made of closures: a copy (a --dask worker's) compiles the text again.
        return DisplayFilter, (self.text, self.known)
