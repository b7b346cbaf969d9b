"""The CPU lowering: tile IR -> vector/scf/memref/arith with the CPU entry ABI (convert-tile-to-vector)."""
