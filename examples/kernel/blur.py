"""2-D box blur, per-pixel scalar code: the kernel from the README, run as written."""
import sys

import numpy as np

import alloy as al


@al.kernel
def blur(src, dst: al.output, W: al.constexpr, H: al.constexpr):
    x = al.program_id(0)
    y = al.program_id(1)
    acc = 0.0
    count = 0
    for dy in range(-1, 2):
        for dx in range(-1, 2):
            nx = x + dx
            ny = y + dy
            if nx >= 0:
                if nx < W:
                    if ny >= 0:
                        if ny < H:
                            acc = acc + al.load(src + ny * W + nx)
                            count = count + 1
    al.store(dst + y * W + x, acc / count)


def reference(img):
    h, w = img.shape
    pad = np.pad(img.astype(np.float64), 1)
    ones = np.pad(np.ones_like(img, dtype=np.float64), 1)
    acc = sum(pad[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy in (-1, 0, 1) for dx in (-1, 0, 1))
    cnt = sum(ones[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy in (-1, 0, 1) for dx in (-1, 0, 1))
    return acc / cnt


def main():
    W, H = 1920, 1080
    img = np.random.rand(H, W).astype(np.float32)
    out = blur[W, H](img.ravel(), W=W, H=H)
    result = np.asarray(out).reshape(H, W)
    ok = np.allclose(result, reference(img), atol=1e-5)
    print("blur:", "ok" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
