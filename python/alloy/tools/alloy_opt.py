"""alloy-opt: an mlir-opt-style driver for Alloy's passes and upstream MLIR passes.

    alloy-opt FILE|- --pass-pipeline='builtin.module(tile-canonicalize,convert-tile-to-vector,canonicalize)'
    alloy-opt --list-passes

The top-level list of the pipeline is split: names in `alloy.passes.PASSES`
run as Python passes, runs of other entries go to MLIR's PassManager as one
nested pipeline each. The tile dialect is loaded into the context. The result
is printed to stdout (or -o FILE). Exit status 1 with `FILE:LINE:COL: error:`
on parse failures, unknown passes and lowering errors.
"""
from __future__ import annotations

import argparse
import re
import sys


class OptError(Exception):
    pass


def split_pipeline(text: str) -> list[str]:
    """Top-level entries of 'builtin.module(a,b{x=1,y=2},func.func(c))' (or of a bare 'a,b')."""
    text = text.strip()
    m = re.fullmatch(r"builtin\.module\((.*)\)", text, re.S)
    if m:
        text = m.group(1)
    out, depth, cur = [], 0, []
    for ch in text:
        if ch in "({":
            depth += 1
        elif ch in ")}":
            depth -= 1
            if depth < 0:
                raise OptError(f"unbalanced brackets in pass pipeline {text!r}")
        if ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if depth:
        raise OptError(f"unbalanced brackets in pass pipeline {text!r}")
    if "".join(cur).strip():
        out.append("".join(cur).strip())
    return [p for p in out if p]


def _check_upstream(entry: str, ctx) -> None:
    from mlir.passmanager import PassManager

    try:
        PassManager.parse(f"builtin.module({entry})", ctx)
    except Exception as e:  # noqa: BLE001 - the parser's message is the useful part
        name = re.match(r"[\w.\-]+", entry)
        raise OptError(f"unknown pass or bad options '{name.group(0) if name else entry}': "
                       f"{str(e).strip().splitlines()[0]}") from None


def run_pipeline(module, entries: list[str]) -> None:
    from mlir.passmanager import PassManager

    from alloy.passes import PASSES

    ctx = module.context
    for e in entries:
        if e not in PASSES:
            _check_upstream(e, ctx)
    group: list[str] = []

    def flush():
        if group:
            PassManager.parse("builtin.module(" + ",".join(group) + ")", ctx).run(module.operation)
            group.clear()

    for e in entries:
        if e in PASSES:
            flush()
            PASSES[e](module.operation, None)
        else:
            group.append(e)
    flush()


def _diag_text(e, filename: str) -> str:
    """MLIRError diagnostics as FILE:LINE:COL: error: message."""
    diags = getattr(e, "error_diagnostics", None) or []
    lines = []
    for d in diags:
        loc = str(d.location)
        m = re.match(r'loc\("[^"]*":(\d+):(\d+)\)', loc)
        where = f"{filename}:{m.group(1)}:{m.group(2)}" if m else filename
        lines.append(f"{where}: error: {d.message}")
    return "\n".join(lines) or f"{filename}: error: {str(e).strip()}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="alloy-opt", description="Run Alloy and MLIR passes on an MLIR file.")
    ap.add_argument("input", nargs="?", default="-", help="input .mlir file, '-' for stdin")
    ap.add_argument("--pass-pipeline", default="", help="builtin.module(pass1,pass2{opt=v},...)")
    ap.add_argument("-o", dest="output", default="-", help="output file ('-': stdout)")
    ap.add_argument("--list-passes", action="store_true", help="list Alloy's passes and exit")
    args = ap.parse_args(argv)

    from alloy.passes import PASSES

    if args.list_passes:
        for name in sorted(PASSES.keys()):
            print(name)
        return 0
    filename = "<stdin>" if args.input == "-" else args.input
    try:
        text = sys.stdin.read() if args.input == "-" else open(args.input).read()
    except OSError as e:
        print(f"alloy-opt: error: cannot read {filename}: {e.strerror}", file=sys.stderr)
        return 1

    from mlir import ir

    from alloy.dialects import tile
    from alloy.passes.errors import LoweringError

    ctx = tile.new_context()
    try:
        entries = split_pipeline(args.pass_pipeline)
        try:
            module = ir.Module.parse(text, ctx)
        except ir.MLIRError as e:
            raise OptError(_diag_text(e, filename)) from None
        with ctx:
            run_pipeline(module, entries)
    except OptError as e:
        msg = str(e)
        print(msg if msg.startswith(filename) else f"{filename}: error: {msg}", file=sys.stderr)
        return 1
    except LoweringError as e:  # locations of parsed text read "-:LINE:COL"
        print(f"{filename}: error: {str(e).replace(' at -:', f' at {filename}:')}", file=sys.stderr)
        return 1
    except ir.MLIRError as e:
        print(_diag_text(e, filename), file=sys.stderr)
        return 1
    out = str(module)
    if args.output == "-":
        sys.stdout.write(out)
    else:
        with open(args.output, "w") as f:
            f.write(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
