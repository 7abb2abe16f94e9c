#!/usr/bin/python3
"""numpy's side of the npy suite (tests/test_npy.c): reads the .npz files traind wrote
with numpy.load and compares them with traind's JSON answers.

  npy_check.py model MODEL.npz MODEL.json     the npz holds exactly the numeric arrays of
                                              the JSON model object, each under its JSON
                                              path (layers[0].W as "layers.0.W",
                                              gmm.means as "gmm.means"), equal, shape too
  npy_check.py outputs PRED.npz PRED.json     every key of the predictions equals the
                                              npz array (labels as int32)
Exits 1 with a message on the first difference."""
import json
import sys

import numpy as np


def fail(msg):
    print(msg)
    sys.exit(1)


def same(name, got, want):
    want = np.asarray(want, dtype=got.dtype)
    if got.shape != want.shape:
        fail(f"{name}: shape {got.shape}, JSON {want.shape}")
    if not np.array_equal(got, want):
        fail(f"{name}: values differ (max {np.abs(got - want).max()})")


mode, npz, js = sys.argv[1:4]
z = np.load(npz)
j = json.load(open(js))
if mode == "model":
    want = {}

    def walk(prefix, v):
        """numeric arrays by their JSON path: layers[0].W is "layers.0.W" """
        if isinstance(v, dict):
            for k, x in v.items():
                walk(f"{prefix}{k}.", x)
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            for i, x in enumerate(v):
                walk(f"{prefix}{i}.", x)
        elif isinstance(v, list):
            want[prefix[:-1]] = v

    walk("", j)
    if not want:
        fail("no arrays in the JSON model")
    for k, v in want.items():
        if k not in z:
            fail(f"{k} missing from the npz ({list(z.keys())})")
        same(k, z[k], v)
    if sorted(want) != sorted(z.keys()):
        fail(f"npz names {sorted(z.keys())} vs JSON {sorted(want)}")
else:
    if sorted(z.keys()) != sorted(j.keys()):
        fail(f"keys {sorted(z.keys())} vs {sorted(j.keys())}")
    for k in j:
        if k == "labels" and z[k].dtype != np.int32:
            fail(f"labels dtype {z[k].dtype}")
        same(k, z[k], j[k])
print("ok")
