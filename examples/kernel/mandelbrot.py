"""Mandelbrot set: divergent per-pixel iteration with a while loop and an early break."""
import sys

import numpy as np

import alloy as al


@al.kernel
def mandelbrot(out: al.output, W: al.constexpr, H: al.constexpr, MAX_ITER: al.constexpr = 100):
    px = al.program_id(0)
    py = al.program_id(1)
    cx = -2.0 + 3.0 * px / W
    cy = -1.25 + 2.5 * py / H
    x = 0.0
    y = 0.0
    it = 0
    while it < MAX_ITER:
        if x * x + y * y > 4.0:
            break
        x, y = x * x - y * y + cx, 2.0 * x * y + cy
        it += 1
    al.store(out + py * W + px, it)


def reference(W, H, max_iter):
    px, py = np.meshgrid(np.arange(W), np.arange(H))
    c = (-2.0 + 3.0 * px.astype(np.float32) / W).astype(np.float32) + \
        1j * (-1.25 + 2.5 * py.astype(np.float32) / H).astype(np.float32)
    z = np.zeros_like(c, dtype=np.complex64)
    it = np.zeros(c.shape, np.int32)
    alive = np.ones(c.shape, bool)
    for _ in range(max_iter):
        alive &= (z.real * z.real + z.imag * z.imag) <= 4.0
        z = np.where(alive, z * z + c, z)
        it += alive
    return it


def main():
    W, H = 320, 200
    img = np.asarray(mandelbrot[W, H](W=W, H=H)).reshape(H, W)
    ref = reference(W, H, 100)
    agree = (img == ref).mean()  # float rounding may flip a few boundary pixels
    ok = img.dtype == np.int32 and agree > 0.995
    print(f"mandelbrot: {'ok' if ok else 'MISMATCH'} ({agree:.4f} of pixels equal numpy)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
