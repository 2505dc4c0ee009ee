#!/usr/bin/env bash
# Prepares what the GPU device check (scripts/device-check.sh) needs on a machine that has a GPU but no
# network, no node_modules and perhaps no Node.js. Run it here, on a machine with nvcc (no GPU needed):
#
#   scripts/device-pack.sh [--skip-native] [--allow-type-errors]
#
#   1. builds the addon as `npm run build` does (build/Release/dino.node) and checks that it has the
#      CUDA backend compiled in (--skip-native: keep the addon already built);
#   2. compiles the TypeScript (dist/), failing on type errors unless --allow-type-errors;
#   3. fills the git-ignored folder .device/ with node.xz (this machine's `node`, xz-compressed; made
#      again only when that binary changes) and lib/ (the shared libraries the addon links beyond glibc:
#      libgomp for OpenMP, and libstdc++ and libgcc_s, since the GPU machine's may be older than ours);
#   4. runs the device check's `load` stage from a copy of dist/, the addon and .device/ in an empty
#      folder, with the node from node.xz: every module the check uses must load without node_modules;
#   5. prints the ignored paths to send along with the checkout, and fails if the checkout (tracked and
#      untracked files that git does not ignore) and those paths together pass DEVICE_PACK_LIMIT_MIB
#      (default 64).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
skip_native=0
allow_type_errors=0
for arg in "$@"; do
  case "$arg" in
    --skip-native) skip_native=1 ;;
    --allow-type-errors) allow_type_errors=1 ;;
    -h | --help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "device-pack: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
  esac
done
limit_mib=${DEVICE_PACK_LIMIT_MIB:-64}
addon=build/Release/dino.node
say() { echo "device-pack: $*"; }
die() { echo "device-pack: error: $*" >&2; exit 1; }

command -v node >/dev/null || die "node is not on PATH"
command -v xz >/dev/null || die "xz is not on PATH"
[ -d node_modules ] || die "node_modules is missing: run npm install (or npm ci) first"

# 1. The addon, with CUDA.
if [ "$skip_native" = 0 ]; then
  command -v nvcc >/dev/null || die "nvcc is not on PATH: the addon would be built without its CUDA backend"
  say "building the addon (cmake-js compile --out build)"
  npx cmake-js compile --out build
fi
[ -f "$addon" ] || die "$addon is missing (run without --skip-native)"
cuda_compiled=$(node -e '
  const a = require(process.argv[1]);
  const i = a.buildInfo();
  console.log(i.cuda.compiled ? "yes" : "no");
' "$root/$addon") || die "$addon does not load"
if [ "$cuda_compiled" != yes ]; then
  die "$addon has no CUDA backend (buildInfo().cuda.compiled is false). If nvcc was installed after build/ was
configured, CMake still remembers it missing: remove build/ and run this script again."
fi
say "$addon has the CUDA backend"

# 2. The JavaScript.
say "compiling the TypeScript (tsc -p tsconfig.json)"
if ! npx tsc -p tsconfig.json; then
  [ "$allow_type_errors" = 1 ] || die "tsc reported type errors (above); fix them, or pass --allow-type-errors to pack what it emitted"
  say "warning: type errors (above); packing what tsc emitted anyway"
fi
[ -f dist/scripts/device-check.js ] || die "dist/scripts/device-check.js was not emitted"

# 3. .device/: Node.js and the shared libraries.
mkdir -p .device/lib
node_bin=$(readlink -f "$(command -v node)")
stamp="$(node --version) $(stat -c '%s %Y' "$node_bin") $node_bin"
if [ -f .device/node.xz ] && [ "$(cat .device/node.stamp 2>/dev/null)" = "$stamp" ]; then
  say "reusing .device/node.xz ($(node --version))"
else
  say "compressing $node_bin ($(node --version)) into .device/node.xz"
  rm -f .device/node.xz .device/node.stamp
  xz -T2 -6 -c "$node_bin" >.device/node.xz.tmp
  mv .device/node.xz.tmp .device/node.xz
  echo "$stamp" >.device/node.stamp
fi
node --version >.device/node.version

rm -f .device/lib/*
# Every library the addon and node link, except glibc's own (present on any Linux machine).
libs=$( (ldd "$addon"; ldd "$node_bin") | awk '$2 == "=>" && $3 ~ /^\// { print $1 " " $3 }' | sort -u)
while read -r soname path; do
  case "$soname" in
    libc.so.* | libm.so.* | libdl.so.* | libpthread.so.* | librt.so.* | ld-linux*) continue ;;
  esac
  cp -L "$path" ".device/lib/$soname"
  say "bringing $soname ($path)"
done <<<"$libs"
[ -f .device/lib/libgomp.so.1 ] || die "ldd does not show libgomp.so.1 for $addon: was it built without OpenMP?"
for lib in libstdc++.so.6 libgcc_s.so.1; do
  [ -f ".device/lib/$lib" ] || die "ldd shows no $lib for $addon or node"
done

# 4. The check's modules load without node_modules, with the node and libraries that travel.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Node looks for packages in every folder above too: the test means nothing if one of them has some.
for d in "$tmp" "$(dirname "$tmp")" /; do
  [ ! -e "${d%/}/node_modules" ] || die "${d%/}/node_modules exists: set TMPDIR to a folder with no node_modules above it"
done
mkdir -p "$tmp/build/Release"
cp -r dist package.json .device "$tmp/"
cp "$addon" "$tmp/build/Release/"
xz -dc .device/node.xz >"$tmp/node"
chmod +x "$tmp/node"
say "checking that the device check loads without node_modules (from a copy in $tmp)"
if ! (cd "$tmp" && env -u NODE_PATH -u NODE_OPTIONS -u DINO_ADDON LD_LIBRARY_PATH="$tmp/.device/lib" \
  ./node dist/scripts/device-check.js --stage load --out load.json >load.log 2>&1); then
  cat "$tmp/load.log" >&2
  node -e '
    const s = require(process.argv[1]).stages.load;
    for (const [m, r] of Object.entries(s?.modules ?? {})) if (r !== "ok") console.log(`  ${m}: ${r}`);
  ' "$tmp/load.json" >&2 || true
  die "the device check does not load without node_modules (above): some module it imports loads sharp or tap"
fi
say "every module loads"

# 5. What travels, and its size.
carry=("$addon" dist .device)
tree_bytes=$(git ls-files -z -co --exclude-standard | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
carry_bytes=$(du -cb "${carry[@]}" | tail -1 | cut -f1)
total=$((tree_bytes + carry_bytes))
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
say "the checkout: $(mib "$tree_bytes") MiB; the ignored paths: $(mib "$carry_bytes") MiB ($(du -sh "${carry[@]}" | awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $2, $1 }'))"
if [ "$total" -gt $((limit_mib * 1048576)) ]; then
  die "together $(mib "$total") MiB, over $limit_mib MiB"
fi
say "together $(mib "$total") MiB (limit $limit_mib MiB)"
echo
echo "Send the checkout with these ignored paths:"
printf '  %s\n' "${carry[@]}"
echo "and run there, from the checkout's root:  scripts/device-check.sh OUTPUT_DIR"
