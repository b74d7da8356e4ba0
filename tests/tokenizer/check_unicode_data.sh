#!/usr/bin/env bash
# llm/unicode_data.c must be exactly what tests/tokenizer/gen_unicode.py prints (same Unicode version).
set -euo pipefail
py=${MP_PYTHON:-/usr/bin/python3}
command -v "$py" >/dev/null 2>&1 || { echo "no python: skipped"; exit 77; }
want=$(sed -n 's/.*(Unicode \([0-9.]*\)).*/\1/p' "$MP_SOURCE_DIR/llm/unicode_data.c" | head -1)
have=$("$py" -c 'import unicodedata; print(unicodedata.unidata_version)')
if [[ "$want" != "$have" ]]; then echo "python has Unicode $have, tables are $want: skipped"; exit 77; fi
"$py" "$MP_SOURCE_DIR/tests/tokenizer/gen_unicode.py" | cmp - "$MP_SOURCE_DIR/llm/unicode_data.c"
echo "unicode_data.c matches gen_unicode.py (Unicode $have)"
