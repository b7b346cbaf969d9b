"""Python AST → tile dialect. Imports MLIR: load it only when compiling."""
