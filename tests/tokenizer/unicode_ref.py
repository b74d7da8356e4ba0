#!/usr/bin/env python3
"""Reference for test_tokenizer_unicode: reads a JSON list of strings on stdin and prints, per string,
[NFD code points, NFC code points, general categories] as JSON (Python's unicodedata)."""
import json
import sys
import unicodedata

out = []
for s in json.load(sys.stdin):
    out.append([[ord(c) for c in unicodedata.normalize("NFD", s)],
                [ord(c) for c in unicodedata.normalize("NFC", s)],
                [unicodedata.category(c) for c in s]])
json.dump(out, sys.stdout)
