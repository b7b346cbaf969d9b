"""Hash a kernel's source and the @al.func helpers it calls, for its cache key.

Only the source text is read (no parsing into tile IR), so a cache hit stays cheap.
"""
from __future__ import annotations

import ast
import hashlib
import inspect
import textwrap


def source_hashes(fn, seen=None) -> list[str]:
    """sha256 of `fn`'s source, then of every @al.func reachable from it by name (sorted by name)."""
    top = seen is None
    seen = {} if seen is None else seen
    try:
        text = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        return []
    own = hashlib.sha256(text.encode()).hexdigest()
    tree = ast.parse(text)
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    names |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    g = dict(fn.__globals__)
    g.update(inspect.getclosurevars(fn).nonlocals)
    for name in sorted(names):
        obj = g.get(name)
        if getattr(obj, "__alloy_func__", None) is None or name in seen:
            continue
        seen[name] = None
        helper = source_hashes(obj.fn, seen)
        seen[name] = helper[0] if helper else ""
    return [own] + [seen[k] for k in sorted(seen)] if top else [own]
