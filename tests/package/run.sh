#!/usr/bin/env bash
# Builds the consumer project (this folder) against Kappa the way a user
# would, with the C++ compiler CXX, and runs it:
#   run.sh installed BUILD_DIR CXX      find_package of `cmake --install BUILD_DIR`
#   run.sh subdirectory SOURCE_DIR CXX  add_subdirectory of Kappa's source tree
# Checks: a `solo` job stopped after 2 checkpoints and resumed in another
# process, and a `run` job whose tasks spawn, await a future and share a queue
# on worker processes.
set -euo pipefail
mode=$1 kappa=$2 cxx=$3
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Release without debug info: the subdirectory build compiles Kappa itself,
# and this keeps it short.
configure=(-S "$here" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release
           -DCMAKE_CXX_COMPILER="$cxx")
case $mode in
  installed)
    cmake --install "$kappa" --prefix "$work/prefix" > /dev/null
    configure+=(-DCMAKE_PREFIX_PATH="$work/prefix")
    ;;
  subdirectory)
    configure+=(-DKAPPA_SOURCE_DIR="$kappa")
    ;;
  *) echo "unknown mode: $mode"; exit 2 ;;
esac
cmake "${configure[@]}" > "$work/configure.log" 2>&1 || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/build" > "$work/build.log" 2>&1 || { tail -50 "$work/build.log"; exit 1; }

if [ "$mode" = subdirectory ]; then
  # Only the library and the app: not Kappa's tests, benchmarks or examples.
  extra=$(ninja -C "$work/build" -t targets all |
          grep -E '^(kappa_tests|state_app|semantics_app|kappa_demo|wordcount|kappa_[a-z_]*bench[a-z_]*):' || true)
  [ -z "$extra" ] || { echo "the parent project builds Kappa's own targets:"; echo "$extra"; exit 1; }
fi

app=$work/build/consumer
set +e
"$app" solo --dir "$work/ckpt" --event '{"mode": "loop", "n": 5}' --max-checkpoints 2 2> /dev/null
code=$?
set -e
[ "$code" = 75 ] || { echo "expected exit 75 (stopped), got $code"; exit 1; }
out=$("$app" resume "$work/ckpt")
[ "$out" = "[0,1,4,9,16]" ] || { echo "solo/resume: unexpected result: $out"; exit 1; }

out=$("$app" run --event '{"mode": "spawn", "n": 10}' --workers 2 --store "file://$work/store")
[ "$out" = '{"square":100,"sum":55}' ] || { echo "run: unexpected result: $out"; exit 1; }
echo "$mode Kappa with $cxx works"
