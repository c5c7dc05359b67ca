#!/usr/bin/env bash
# The C style check (.clang-format, Debian's clang-format).
#
#   scripts/format.sh --check [FILE...]   lists every file clang-format would
#                                         change; exit 1 if there is one
#   scripts/format.sh --fix [FILE...]     reformats the files in place
#
# Without FILEs: every tracked *.c and *.h of the project (git ls-files), so
# generated and build files are never touched.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
[ "$mode" = --check ] || [ "$mode" = --fix ] || { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
shift
CF=${CLANG_FORMAT:-clang-format}
command -v "$CF" >/dev/null || { echo "format: $CF is not installed (scripts/setup.sh installs it)" >&2; exit 1; }
if [ $# -gt 0 ]; then
  files=("$@")
else
  mapfile -t files < <(git ls-files '*.c' '*.h')
fi
if [ "$mode" = --fix ]; then
  "$CF" -i --style=file "${files[@]}"
  echo "format: formatted ${#files[@]} files"
  exit 0
fi
bad=()
for f in "${files[@]}"; do
  "$CF" --style=file --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
  printf 'format: not formatted: %s\n' "${bad[@]}" >&2
  echo "format: ${#bad[@]} of ${#files[@]} files differ from .clang-format (scripts/format.sh --fix FILE)" >&2
  exit 1
fi
echo "format: all ${#files[@]} files match .clang-format"
