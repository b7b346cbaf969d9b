"""The part of a kernel's cache key that comes from Python: its source text, the @al.func helpers
it calls and the global and closure values its source names, recursively.

Built for the cache-hit path: the source lines come from linecache and are never tokenized or
parsed (the frontend's FunctionSource does that, on a miss). The text keyed is a superset of the
function's block as the frontend reads it, and the values are those of every identifier in that
text that resolves in the function's closure or globals, so whatever the frontend can read is
covered; an unrelated identifier only costs a needless recompile when its value changes.
"""
from __future__ import annotations

import linecache
import re
import sys
import types

from ..language import dtypes as dt
from .cache import digest

_IDENT = re.compile(r"[^\W\d]\w*")
_ATTR_DEPTH = 3  # how deep `a.b.c` attribute chains from globals are followed
_SCALARS = (type(None), bool, int, float, complex, str, bytes)


def kernel_digest(fn) -> str:
    """sha256 hex digest of `fn`'s source text and of every value its source may read: globals and
    closure variables named in it (@al.func helpers by their own digest parts, modules and objects
    by the attributes named in it)."""
    return digest(_function_key(fn, {}))


def _function_key(fn, seen: dict) -> tuple:
    code = fn.__code__
    text = _source_text(code, fn.__globals__)
    if text is None:  # no source: the frontend cannot compile it either; key the bytecode
        import marshal

        return ("nosource", fn.__qualname__, marshal.dumps(code))
    closure = {}
    for name, cell in zip(code.co_freevars, fn.__closure__ or ()):
        try:
            closure[name] = cell.cell_contents
        except ValueError:  # an empty cell
            pass
    names = set(_IDENT.findall(text))
    g = fn.__globals__
    values = []
    for name in sorted(names):
        if name in closure:
            v = closure[name]
        elif name in g:
            v = g[name]
        else:
            continue
        values.append((name, _value_key(v, names, seen, _ATTR_DEPTH)))
    defaults = (fn.__defaults__ or ()) + tuple(sorted((fn.__kwdefaults__ or {}).items()))  # def-time values
    return ("fn", text, tuple(values), _value_key(defaults, names, seen, _ATTR_DEPTH))


def _value_key(v, names: set, seen: dict, depth: int):
    if isinstance(v, _SCALARS):
        return (type(v).__name__, repr(v))
    if isinstance(v, dt.dtype):
        return ("dtype", v.name)
    helper = getattr(v, "__alloy_func__", None)
    if helper is not None and hasattr(v, "fn"):
        fid = id(v.fn)
        if fid not in seen:
            seen[fid] = ("func", v.fn.__qualname__)  # stands for itself while being keyed (recursion)
            seen[fid] = ("func", _function_key(v.fn, seen))
        return seen[fid]
    if getattr(v, "__alloy_kernel__", False):
        return ("kernel", v.__name__)
    builtin = getattr(v, "__alloy_builtin__", None)
    if isinstance(builtin, str):
        return ("builtin", builtin)
    if isinstance(v, (tuple, list)):  # all of it, however nested (the frontend indexes tuples)
        if ("in", id(v)) in seen:
            return ("cycle",)
        seen[("in", id(v))] = True
        try:
            return (type(v).__name__, tuple(_value_key(x, names, seen, depth) for x in v))
        finally:
            del seen[("in", id(v))]
    np = sys.modules.get("numpy")
    if np is not None and isinstance(v, (np.generic, np.dtype)):
        return ("np", v.dtype.str if isinstance(v, np.generic) else "dtype", str(v))
    if isinstance(v, types.ModuleType):
        # the module's own attributes only: a module __getattr__ may import (numpy.random, ...)
        d = v.__dict__
        return ("module", v.__name__, _attrs(lambda a: d[a], [a for a in names if a in d], names, seen, depth))
    if callable(v):
        if getattr(v, "__module__", None) == "builtins":  # min, max, float, range...: the frontend knows them
            return ("builtins", getattr(v, "__qualname__", None))
        if not isinstance(v, type):
            # another function is no more callable from a kernel than any other: its identity (which
            # may differ between library versions) cannot change the generated code; not keyed
            return ("callable",)
    # a class or another object: only as a namespace of the attributes the source names
    return ("class" if isinstance(v, type) else "object",
            _attrs(lambda a: getattr(v, a), [a for a in names if not a.startswith("__")], names, seen, depth))


def _attrs(get, attrs: list, names: set, seen: dict, depth: int) -> tuple:
    if depth <= 0:
        return ()
    out = []
    for a in sorted(attrs):
        try:
            value = get(a)
        except Exception:  # noqa: BLE001 - not an attribute this object has
            continue
        out.append((a, _value_key(value, names, seen, depth - 1)))
    return tuple(out)


def _source_text(code, module_globals) -> str | None:
    """The lines of `code`'s function, decorators included, from linecache: the block as far as the
    indentation and the bytecode's line positions reach, without the blank lines and the comments
    at the def's indentation that follow it."""
    filename = code.co_filename
    linecache.checkcache(filename)
    lines = linecache.getlines(filename, module_globals)
    start = code.co_firstlineno - 1
    if not 0 <= start < len(lines):
        return None
    first = lines[start]
    indent = len(first) - len(first.lstrip())
    floor = end = max(start + 1, _last_line(code))  # exclusive; past every line that has bytecode
    while end < len(lines):
        line = lines[end]
        stripped = line.lstrip()
        if stripped and not stripped.startswith("#") and len(line) - len(stripped) <= indent:
            break
        end += 1
    while end > floor and _outside(lines[end - 1], indent):
        end -= 1
    return "".join(lines[start:end])


def _outside(line: str, indent: int) -> bool:
    """A blank line, or a comment no deeper than the def: what follows a block, not in it."""
    stripped = line.lstrip()
    return not stripped or (stripped.startswith("#") and len(line) - len(stripped) <= indent)


def _last_line(code) -> int:
    """The last source line (1-based) of any instruction of `code` or of the code nested in it."""
    last = code.co_firstlineno
    if hasattr(code, "co_positions"):  # Python 3.11+: instructions' end lines
        ends = (p[1] for p in code.co_positions())
    else:
        ends = (p[2] for p in code.co_lines())
    for end_line in ends:
        if end_line is not None and end_line > last:
            last = end_line
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            last = max(last, _last_line(c))
    return last
