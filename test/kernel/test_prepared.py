"""al.prepare / al.LaunchSequence: launches resolved once, rebound and replayed."""
import numpy as np
import pytest

import alloy as al


@al.kernel
def axpy(X, Y, Z: al.output, n, a, BLOCK: al.constexpr):
    offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    m = offs < n
    al.store(Z + offs, al.load(X + offs, mask=m) * a + al.load(Y + offs, mask=m), mask=m)


def test_prepare_rebind_and_sequence():
    x = np.arange(100, dtype=np.float32)
    y = np.ones(100, np.float32)
    z = np.zeros(100, np.float32)
    launch = al.prepare(axpy, (2,), x, y, 100, 2.0, Z=z, BLOCK=64)
    with al.profile() as p:
        launch.run()
    assert p.launches == 1
    np.testing.assert_array_equal(z, 2 * x + 1)
    x2 = np.full(30, 3, np.float32)
    launch.rebind(X=x2, n=30, a=-1.0).run(grid=(1,))
    np.testing.assert_array_equal(z[:30], -3 + 1)
    np.testing.assert_array_equal(z[30:], (2 * x + 1)[30:])
    w = np.zeros(100, np.float32)
    second = al.prepare(axpy, (2,), z, y, 100, 1.0, Z=w, BLOCK=64)
    launch.rebind(X=x, n=100, a=2.0)
    sequence = al.LaunchSequence([launch, second])
    with al.profile() as p:
        sequence.run()
    assert p.launches == 2 and len(sequence) == 2
    np.testing.assert_array_equal(w, 2 * x + 2)


def test_prepare_errors_name_the_argument():
    x = np.zeros(8, np.float32)
    with pytest.raises(ValueError, match="needs every output passed"):
        al.prepare(axpy, (1,), x, x, 8, 1.0, BLOCK=8)
    launch = al.prepare(axpy, (1,), x, x, 8, 1.0, Z=np.zeros(8, np.float32), BLOCK=8)
    with pytest.raises(TypeError, match="argument 'X': prepared for a 1-d float32 array, got a 1-d float64"):
        launch.rebind(X=np.zeros(8))
    with pytest.raises(TypeError, match="rebinding a float scalar with int"):
        launch.rebind(a=1)
    with pytest.raises(TypeError, match="no runtime argument 'BLOCK'"):
        launch.rebind(BLOCK=16)
