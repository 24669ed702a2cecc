#!/usr/bin/env bash
# Installs Kappa from BUILD_DIR into a temporary prefix, builds the consumer
# project against it with find_package(Kappa), and runs the result across two
# processes (stop after 2 checkpoints, resume).
set -euo pipefail
build_dir=$1 source_dir=$2 cxx=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build_dir" --prefix "$work/prefix" > /dev/null
cmake -S "$source_dir" -B "$work/build" -G Ninja -DCMAKE_CXX_COMPILER="$cxx" \
      -DCMAKE_PREFIX_PATH="$work/prefix" > /dev/null
cmake --build "$work/build" > /dev/null
set +e
"$work/build/consumer" solo --dir "$work/ckpt" --event '{"n": 5}' --max-checkpoints 2 2> /dev/null
code=$?
set -e
[ "$code" = 75 ] || { echo "expected exit 75 (stopped), got $code"; exit 1; }
out=$("$work/build/consumer" resume "$work/ckpt")
[ "$out" = "[0,1,4,9,16]" ] || { echo "unexpected result: $out"; exit 1; }
echo "installed package works: $out"
