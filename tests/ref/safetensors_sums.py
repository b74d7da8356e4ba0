#!/usr/bin/env python3
"""Independent reader for the safetensors test: parses the header with Python's json and the data with
numpy (following the published format: u64 LE header length, JSON header, data section) and prints one
line per tensor: name dtype shape(comma-separated, outermost first) sum(float64) first-value."""
import json
import struct
import sys

import numpy as np

DT = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64, "I32": np.int32,
      "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}

with open(sys.argv[1], "rb") as f:
    buf = f.read()
n = struct.unpack("<Q", buf[:8])[0]
hdr = json.loads(buf[8:8 + n])
base = 8 + n
for name, e in hdr.items():
    if name == "__metadata__":
        continue
    b, en = e["data_offsets"]
    if e["dtype"] == "BF16":
        u = np.frombuffer(buf[base + b:base + en], dtype=np.uint16).astype(np.uint32) << 16
        a = u.view(np.float32)
    else:
        a = np.frombuffer(buf[base + b:base + en], dtype=DT[e["dtype"]])
    a = a.astype(np.float64)
    first = a[0] if a.size else 0.0
    print(name, e["dtype"], ",".join(str(x) for x in e["shape"]), repr(float(a.sum())), repr(float(first)))
