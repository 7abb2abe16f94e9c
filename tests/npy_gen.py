#!/usr/bin/python3
"""Writes the .npy / .npz bodies of the npy suite (tests/test_npy.c) into OUTDIR.

Usage: /usr/bin/python3 tests/npy_gen.py OUTDIR   (needs numpy: Debian python3-numpy)

One float64 dataset (X 40 x 3, y int32 over 3 classes) as:
  data.json         the JSON body (X as float64 reprs: the server reads float32(x), which
                    is what astype(np.float32) gives)
  plain.npz         numpy.savez (stored members), X float64, y int32
  comp.npz          numpy.savez_compressed (deflated members)
  fortran_be.npz    X big-endian float64 in Fortran order, y big-endian int64, y first
  desc.npz          written to a stream that cannot seek: members with data descriptors
  unicode_y.npz     y as class names ('<U3'), unicode_be.npz ('>U5', deflated), and
  unicode_y.json    the same names as JSON strings
  X.npy             X alone
and, per dtype, X_<dtype>.npy with X_<dtype>.json holding the same values through
astype(np.float32) (the conversion under test), plus bad bodies for the error tests."""
import io
import json
import sys
import zipfile

import numpy as np

out = sys.argv[1]
rng = np.random.default_rng(7)
X = rng.normal(size=(40, 3))
y = (X @ np.array([[1.0, -1.0, 0.2], [0.5, 0.3, -1.0], [-0.4, 1.0, 0.6]])).argmax(1)
y = y.astype(np.int32)


def put(name, data):
    with open(f"{out}/{name}", "wb") as f:
        f.write(data)


def npz(fn, **arrays):
    b = io.BytesIO()
    fn(b, **arrays)
    return b.getvalue()


def npy(a):
    b = io.BytesIO()
    np.save(b, a)
    return b.getvalue()


put("data.json", json.dumps({"X": X.tolist(), "y": y.tolist()}).encode())
# y as class names: numpy unicode ('<U'; and big-endian '>U') and the same as JSON strings
names = np.array(["b", "a", "\u00e9t\u00e9"])[y]
put("unicode_y.npz", npz(np.savez, X=X, y=names))
put("unicode_be.npz", npz(np.savez_compressed, X=X, y=names.astype(">U5")))
put("unicode_y.json", json.dumps({"X": X.tolist(), "y": names.tolist()}).encode())
put("plain.npz", npz(np.savez, X=X, y=y))
put("comp.npz", npz(np.savez_compressed, X=X, y=y))
put("fortran_be.npz", npz(np.savez, y=y.astype(">i8"), X=np.asfortranarray(X.astype(">f8"))))
put("X.npy", npy(X))


class Stream(io.RawIOBase):
    """A sink without seek: zipfile then writes data descriptors."""
    def __init__(self):
        self.b = bytearray()

    def writable(self):
        return True

    def write(self, d):
        self.b += d
        return len(d)


s = Stream()
with zipfile.ZipFile(s, "w", compression=zipfile.ZIP_DEFLATED) as z:
    for name, a in (("X", X), ("y", y)):
        with z.open(name + ".npy", "w", force_zip64=True) as f:
            np.lib.format.write_array(f, a)
put("desc.npz", bytes(s.b))

# dtype conversions: values chosen to need rounding (big ints) and to cover the range
base = rng.normal(scale=3e3, size=(6, 4))
for dt in ["f4", "<f8", ">f8", "i1", "i2", ">i4", "i8", "u1", "u2", "u4", ">u8", "?"]:
    if dt == "?":
        a = base > 0
    elif np.dtype(dt).kind == "u":
        a = np.abs(base * (2.0 ** (8 * np.dtype(dt).itemsize - 14))).astype(dt)
    elif np.dtype(dt).kind == "i":
        a = (base * (2.0 ** (8 * np.dtype(dt).itemsize - 15))).astype(dt)
    else:
        a = base.astype(dt)
    tag = dt.replace("<", "le").replace(">", "be").replace("?", "bool")
    put(f"X_{tag}.npy", npy(a))
    put(f"X_{tag}.json", json.dumps({"X": a.astype(np.float32).astype(float).tolist()}).encode())

# bad bodies
b = io.BytesIO()
np.save(b, np.array([[1, "a"]], dtype=object), allow_pickle=True)
put("object.npy", b.getvalue())
put("unicode_y2d.npz", npz(np.savez, X=X, y=np.array([["a"]] * 40)))
put("short_y.npz", npz(np.savez, X=X, y=y[:10]))
Xn = X.copy()
Xn[3, 1] = np.nan
put("nan.npy", npy(Xn))
put("big.npy", npy(np.array([[1.0, 1e300]])))
put("cut.npy", npy(X)[:-5])
put("vector.npy", npy(X[:, 0]))
put("extra.npz", npz(np.savez, X=X, w=y))
put("pairs_bad.npz", npz(np.savez, X=X, pairs=np.array([[0, 1], [2, 40]]),
                         pair_labels=np.array([1, 0])))
c = bytearray(npz(np.savez, X=X, y=y))
c[200] ^= 0xFF                       # inside X.npy's data: the CRC catches it
put("corrupt.npz", bytes(c))
