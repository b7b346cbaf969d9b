"""Errors raised by the tile passes and the CPU lowering."""
from __future__ import annotations

import re


class LoweringError(Exception):
    """A tile op the lowering cannot handle; the message names the op and its location."""

    def __init__(self, message: str, op=None):
        where = ""
        self.filename = self.line = self.column = None  # the op's kernel source position, when known
        if op is not None:
            name = op.operation.name if hasattr(op, "operation") else str(op)
            loc = self._location(op)
            where = f"{name}{' at ' + loc if loc else ''}: "
        super().__init__(where + message)

    def _location(self, op) -> str:
        try:
            loc = str(op.operation.location)
        except Exception:  # noqa: BLE001 - a location is a nicety, never a reason to fail
            return ""
        if loc in ("loc(unknown)", ""):
            return ""
        m = re.match(r'loc\("([^"]*)":(\d+):(\d+)', loc)  # a file location, or the callee of a call site
        if m:
            self.filename, self.line, self.column = m.group(1), int(m.group(2)), int(m.group(3))
            return f"{m.group(1)}:{m.group(2)}:{m.group(3)}"
        return loc[4:-1] if loc.startswith("loc(") else loc
