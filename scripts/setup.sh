#!/usr/bin/env bash
# Installs every build and test dependency of Kappa from Debian's packages.
# Idempotent: when everything is present it only checks and returns (about a second).
#
#   scripts/setup.sh           build and test dependencies
#   scripts/setup.sh --bench   also what bench/run_all.py compares against:
#                              Dask (python3-distributed) and gnuplot (plots)
set -euo pipefail

bench=0
for arg in "$@"; do
  case "$arg" in
    --bench) bench=1 ;;
    -h | --help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup: unknown option '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

packages=(
  build-essential clang-16 cmake ninja-build pkg-config git
  libgtest-dev libgmock-dev libbenchmark-dev
  libcereal-dev nlohmann-json3-dev libcli11-dev libfmt-dev libspdlog-dev
  libzstd-dev liblz4-dev libxxhash-dev libssl-dev
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  libsqlite3-dev sqlite3 libhiredis-dev libcurl4-openssl-dev redis-server
  clang-format libclang-rt-16-dev python3-clang-16
  libpugixml-dev python3-botocore libzip-dev
  slurm-wlm munge
  libre2-dev
  libcpp-httplib-dev chromium
)
((bench)) && packages+=(python3-distributed python3-pandas gnuplot-nox)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
command -v npm >/dev/null || missing+=(nodejs npm)

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup: all dependencies present" >&2
fi

# s3rver, the S3 server the s3:// store's tests and benchmark run against on
# loopback: the npm package pinned by tests/fixtures/s3/package-lock.json.
s3_fixture="$(cd "$(dirname "$0")/../tests/fixtures/s3" && pwd)"
if ! cmp -s "$s3_fixture/package-lock.json" "$s3_fixture/node_modules/.kappa-installed-lock"; then
  echo "setup: installing s3rver (npm ci in tests/fixtures/s3)" >&2
  (cd "$s3_fixture" && npm ci --no-audit --no-fund --loglevel=error >/dev/null &&
    cp package-lock.json node_modules/.kappa-installed-lock)
fi
