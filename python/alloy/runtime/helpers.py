"""Find the @al.func helpers a kernel calls, for its cache key."""
from __future__ import annotations

import ast
import inspect
import textwrap


def helper_hashes(fn, seen=None) -> list[str]:
    """Source hashes of every @al.func reachable from `fn` by name (sorted by name)."""
    seen = {} if seen is None else seen
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError):
        return []
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    names |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    g = dict(fn.__globals__)
    g.update(inspect.getclosurevars(fn).nonlocals)
    for name in sorted(names):
        obj = g.get(name)
        src = getattr(obj, "__alloy_func__", None)
        if src is None or name in seen:
            continue
        s = src()
        seen[name] = s.hash
        helper_hashes(s.fn, seen)
    return [seen[k] for k in sorted(seen)]
