#!/bin/bash
# The C sources are formatted as the committed .clang-format says (LLVM
# base, 4 spaces, 80 columns; docs/architecture.md, "Conventions").  TAP, one
# line per file.  To fix: clang-format -i FILE (Debian 12's clang-format 14).
cd "${1:-$(dirname "$0")/..}" || exit 1
if ! command -v clang-format >/dev/null; then
    echo "1..0 # SKIP clang-format is not installed (scripts/deps.sh test installs it)"
    exit 0
fi
n=0 bad=0
while IFS= read -r f; do
    n=$((n + 1))
    if out=$(clang-format --dry-run --Werror "$f" 2>&1); then
        echo "ok $n - $f is formatted"
    else
        bad=$((bad + 1))
        echo "not ok $n - $f is not formatted: run clang-format -i $f"
        printf '%s\n' "$out" | head -6 | sed 's/^/# /'
    fi
done < <(find storage vfs sql ext test -name node_modules -prune -o \
              \( -name '*.c' -o -name '*.h' \) -print | sort)
echo "1..$n"
[ $bad = 0 ]
