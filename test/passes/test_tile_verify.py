"""tile-verify's rules, one malformed op each (the lit test tile_verify.mlir shows the messages in context)."""
import pytest
from mlir import ir

from alloy.dialects import tile
from alloy.passes.errors import LoweringError
from alloy.passes.tile_verify import tile_verify

HEAD = "func.func @k(%p: !tile.ptr<f32>, %q: !tile.ptr<i8>, %s: f32, %n: i32) attributes {tile.kernel} {\n"
COMMON = """
  %i = "tile.arange"() {start = 0 : i32, end = 16 : i32} : () -> tensor<16xi32>
  %f = "tile.splat"(%s) : (f32) -> tensor<16xf32>
  %ps = "tile.splat"(%p) : (!tile.ptr<f32>) -> tensor<16x!tile.ptr<f32>>
  %pt = "tile.addptr"(%ps, %i) : (tensor<16x!tile.ptr<f32>>, tensor<16xi32>) -> tensor<16x!tile.ptr<f32>>
  %m2 = "tile.splat"(%s) : (f32) -> tensor<4x4xf32>
"""


def verify(body: str) -> None:
    ctx = tile.new_context()
    module = ir.Module.parse(HEAD + COMMON + body + "\n  return\n}\n", ctx)
    tile_verify(module.operation)


def test_a_well_typed_kernel_passes():
    verify("""
  %v = "tile.load"(%pt) {operandSegmentSizes = array<i32: 1, 0, 0>} : (tensor<16x!tile.ptr<f32>>) -> tensor<16xf32>
  "tile.store"(%pt, %s) : (tensor<16x!tile.ptr<f32>>, f32) -> ()
  %o = "tile.atomic_rmw"(%pt, %v) {kind = "add"} : (tensor<16x!tile.ptr<f32>>, tensor<16xf32>) -> tensor<16xf32>
  %r = "tile.reduce"(%m2) {axis = 1 : i32, kind = "argmax"} : (tensor<4x4xf32>) -> tensor<4xi32>
  %t = "tile.trans"(%m2) : (tensor<4x4xf32>) -> tensor<4x4xf32>
  %d = "tile.dot"(%m2, %t, %m2) : (tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  %e = "tile.expand_dims"(%i) {axis = 0 : i32} : (tensor<16xi32>) -> tensor<1x16xi32>
  %b = "tile.broadcast"(%e) : (tensor<1x16xi32>) -> tensor<4x16xi32>""")


BAD = [
    ('"tile.store"(%pt, %i) : (tensor<16x!tile.ptr<f32>>, tensor<16xi32>) -> ()',
     r"tile.store at .*: the stored value must be tensor<16xf32>, got tensor<16xi32>"),
    ('%a = "tile.addptr"(%s, %i) : (f32, tensor<16xi32>) -> tensor<16x!tile.ptr<f32>>',
     r"the pointer operand must be a !tile.ptr or a tile of them, got f32"),
    ('%o = "tile.atomic_rmw"(%pt, %f) {kind = "mul"} : (tensor<16x!tile.ptr<f32>>, tensor<16xf32>) -> tensor<16xf32>',
     r"unknown atomic kind 'mul'"),
    ('%c = "tile.atomic_rmw"(%q, %n) {kind = "add"} : (!tile.ptr<i8>, i32) -> i32',
     r"the stored value must be i8, got i32"),
    ('%c = "tile.atomic_cas"(%pt, %f, %i) : (tensor<16x!tile.ptr<f32>>, tensor<16xf32>, tensor<16xi32>) -> tensor<16xf32>',
     r"'value' must be tensor<16xf32>, got tensor<16xi32>"),
    ('%r = "tile.reduce"(%m2) {axis = 2 : i32, kind = "sum"} : (tensor<4x4xf32>) -> tensor<4xf32>',
     r"axis 2 out of range"),
    ('%r = "tile.reduce"(%m2) {axis = 0 : i32, kind = "argmax"} : (tensor<4x4xf32>) -> tensor<4xf32>',
     r"the result must be tensor<4xi32>, got tensor<4xf32>"),
    ('%d = "tile.dot"(%m2, %f, %m2) : (tensor<4x4xf32>, tensor<16xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>',
     r"dot shapes do not agree"),
    ('%b = "tile.broadcast"(%i) : (tensor<16xi32>) -> tensor<16x4xi32>', r"cannot broadcast"),
    ('%t = "tile.reshape"(%i) : (tensor<16xi32>) -> tensor<4x8xi32>', r"reshape changes the element count"),
    ('%t = "tile.expand_dims"(%i) {axis = 0 : i32} : (tensor<16xi32>) -> tensor<16x1xi32>', r"expand_dims at axis 0"),
    ('%t = "tile.splat"(%s) : (f32) -> tensor<16xi32>', r"element types differ"),
]


@pytest.mark.parametrize("line,message", BAD, ids=[b[1][:30] for b in BAD])
def test_malformed_op_is_named(line, message):
    with pytest.raises(LoweringError, match=message):
        verify("  " + line)
