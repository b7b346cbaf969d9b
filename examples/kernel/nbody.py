"""N-body step: each program owns a block of bodies and loops over all others in tiles."""
import sys

import numpy as np

import alloy as al


@al.kernel
def accelerations(pos, acc_out: al.output, N, SOFT: al.constexpr = 1e-2, BI: al.constexpr = 64,
                  BJ: al.constexpr = 64):
    i = al.program_id(0) * BI + al.arange(0, BI)
    mi = i < N
    xi = al.load(pos + i * 4 + 0, mask=mi)
    yi = al.load(pos + i * 4 + 1, mask=mi)
    zi = al.load(pos + i * 4 + 2, mask=mi)
    ax = al.zeros((BI,), al.float32)
    ay = al.zeros((BI,), al.float32)
    az = al.zeros((BI,), al.float32)
    for j0 in range(0, N, BJ):
        j = j0 + al.arange(0, BJ)
        mj = j < N
        xj = al.load(pos + j * 4 + 0, mask=mj)
        yj = al.load(pos + j * 4 + 1, mask=mj)
        zj = al.load(pos + j * 4 + 2, mask=mj)
        mj_ = al.load(pos + j * 4 + 3, mask=mj)  # mass (0 where masked)
        dx = xj[None, :] - xi[:, None]
        dy = yj[None, :] - yi[:, None]
        dz = zj[None, :] - zi[:, None]
        r2 = dx * dx + dy * dy + dz * dz + SOFT
        inv = al.rsqrt(r2)
        w = mj_[None, :] * inv * inv * inv
        ax += al.sum(w * dx, axis=1)
        ay += al.sum(w * dy, axis=1)
        az += al.sum(w * dz, axis=1)
    al.store(acc_out + i * 3 + 0, ax, mask=mi)
    al.store(acc_out + i * 3 + 1, ay, mask=mi)
    al.store(acc_out + i * 3 + 2, az, mask=mi)


def reference(p, soft=1e-2):
    d = p[None, :, :3].astype(np.float64) - p[:, None, :3]
    r2 = (d ** 2).sum(-1) + soft
    w = p[None, :, 3] * r2 ** -1.5
    return (w[..., None] * d).sum(1)


def main():
    n = 1000
    pos = np.random.rand(n, 4).astype(np.float32)
    a = np.asarray(accelerations[al.cdiv(n, 64)](pos, n)).reshape(n, 3)
    ok = np.allclose(a, reference(pos), rtol=1e-3, atol=1e-2)
    print("nbody:", "ok" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
