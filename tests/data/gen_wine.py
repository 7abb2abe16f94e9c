#!/usr/bin/python3
"""Writes tests/data/wine.json: scikit-learn's load_wine (178 rows, 13 unscaled features
whose standard deviations differ ~2500 times, 3 classes) as a traind dataset body
{"name", "X", "y"}. Run with Debian's python3-sklearn: /usr/bin/python3 gen_wine.py"""
import json
import os

from sklearn.datasets import load_wine

X, y = load_wine(return_X_y=True)
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wine.json")
with open(out, "w") as f:
    json.dump({"name": "wine", "X": [[float(v) for v in row] for row in X],
               "y": [int(v) for v in y]}, f, separators=(",", ":"))
    f.write("\n")
