#!/usr/bin/env bash
# The GPU device check in one run, on a machine with an NVIDIA GPU, from the checkout's root, with what
# scripts/device-pack.sh prepared (build/Release/dino.node with CUDA, dist/, .device/). Needs no network,
# no node_modules and no Node.js of its own (it unpacks .device/node.xz when PATH has no node 20+);
# needs python3 with a CUDA build of PyTorch for the PyTorch benchmark and to write the summary.
#
#   scripts/device-check.sh [OUTPUT_DIR]        (default: $OUT when set, else ./device-check-out)
#
# Stages, each in its own process under its own time limit, all within DEVICE_CHECK_SECONDS (default
# 360) in total, so that the whole check ends within 7 minutes:
#   info        the addon's build information and a round trip through cuda:0
#   parity      every CPU-vs-CUDA parity case (test/cuda/cases); after a crash or a time-out it starts
#               again after the case that was running (at most 3 tries), recording that case as failed
#   step        one DINO step on cpu and on cuda:0 from the same state (test/cuda/step-parity.ts)
#   bench       the GPU training step benchmark, dino-ts (bench/gpu-step.ts, float32)
#   torch-fp16  the same step in PyTorch (bench/gpu_step_torch.py), autocast fp16, the official default
#   torch-fp32  the same in float32
#
# Writes OUTPUT_DIR/device-check.json (always, also when stages fail: each stage's status, exit code,
# time, and the tail of its output; the parity counts per op with the first failures; the benchmark
# with the ratios dino-ts / PyTorch for images per second and peak memory) and OUTPUT_DIR/device-check.log
# (every stage's whole output).
#
# Exit status: 0 when every parity check passed (every op case and the DINO step); 2 when no CUDA device
# is usable (nothing was checked); 1 otherwise (a parity check failed, or a parity stage did not
# finish). The benchmarks do not change it: their failures are in the summary.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
root=$(pwd)
out=${1:-${OUT:-device-check-out}}
mkdir -p "$out" && out=$(cd "$out" && pwd) || exit 1
summary="$out/device-check.json"
log="$out/device-check.log"
: >"$log"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
budget=${DEVICE_CHECK_SECONDS:-360}
deadline=$((start + budget))
# Both sides of the benchmark: warm-up steps, timed steps, and the seconds after which no new timed step
# starts.
bench_warmup=${BENCH_WARMUP:-2}
bench_steps=${BENCH_STEPS:-8}
bench_max_seconds=${BENCH_MAX_SECONDS:-45}
# Replaced at the end; left as it is if this script is stopped before.
printf '{"ok": false, "exitCode": 1, "error": "the device check was stopped before it finished; see device-check.log"}\n' >"$summary"

say() { echo "device-check: $*" | tee -a "$log"; }

# run_stage NAME LIMIT RESERVE CMD...: runs CMD (a program, not a shell function) with its output in
# $work/NAME.log, the log and stdout, under LIMIT seconds or what remains before the deadline less
# RESERVE (kept for the later stages), and appends its exit status, seconds and limit to
# $work/NAME.status.
run_stage() {
  local name=$1 limit=$2 reserve=$3
  shift 3
  local left=$((deadline - $(date +%s) - reserve))
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$limit" -lt 5 ]; then
    say "$name: skipped, out of time"
    echo "rc=skipped seconds=0 limit=0" >>"$work/$name.status"
    return 124
  fi
  say "$name: starting (limit ${limit} s)"
  local t0 rc
  t0=$(date +%s)
  {
    echo "===== $name: $*"
    timeout -k 10 "$limit" "$@"
  } 2>&1 | tee -a "$work/$name.log" "$log"
  rc=${PIPESTATUS[0]}
  local secs=$(($(date +%s) - t0))
  echo "rc=$rc seconds=$secs limit=$limit" >>"$work/$name.status"
  say "$name: exit $rc after ${secs} s$([ "$rc" = 124 ] || [ "$rc" = 137 ] && echo ' (time limit)')"
  return "$rc"
}

# The machine.
if command -v nvidia-smi >/dev/null; then
  timeout 20 nvidia-smi >"$work/nvidia-smi.txt" 2>&1
  timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,utilization.gpu,temperature.gpu,clocks.sm,clocks.max.sm \
    --format=csv >"$work/nvidia-smi.csv" 2>&1
  cat "$work/nvidia-smi.txt" | tee -a "$log"
else
  echo "nvidia-smi is not on PATH" >"$work/nvidia-smi.txt"
  say "nvidia-smi is not on PATH"
fi

# cuBLAS: the addon opens it at run time and looks in the usual places; python3's own site-packages
# (PyTorch's cuBLAS, in a virtual environment perhaps not among them) are named explicitly.
if [ -z "${DINO_CUBLAS_PATH:-}" ] && command -v python3 >/dev/null; then
  cublas_dir=$(timeout 30 python3 - <<'PY' 2>/dev/null
import glob, os, site
dirs = site.getsitepackages() + [site.getusersitepackages()]
found = [p for d in dirs for v in ("13", "12") for p in sorted(glob.glob(os.path.join(d, "nvidia", "*", "lib", "libcublas.so." + v)))]
print(os.path.dirname(found[0]) if found else "")
PY
  )
  if [ -n "$cublas_dir" ]; then
    export DINO_CUBLAS_PATH="$cublas_dir"
    say "cuBLAS: python3's, in $cublas_dir"
  fi
fi

# Node.js: PATH's when it is 20 or newer, else the one device-pack.sh brought.
node_bin=""
node_source=""
if command -v node >/dev/null && node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' 2>/dev/null; then
  node_bin=$(command -v node)
  node_source=path
elif [ -f .device/node.xz ]; then
  if command -v xz >/dev/null; then
    xz -dc .device/node.xz >"$work/node"
  else
    python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' .device/node.xz "$work/node"
  fi && chmod +x "$work/node" && node_bin="$work/node" && node_source=.device/node.xz
fi
# The libraries that travel in .device/lib: the bundled node and the addon were linked against them.
# PATH's node may need a newer libstdc++ than ours, so the candidates are tried in order, and the
# first with which node loads the addon is kept: ours without libstdc++ and libgcc_s, all of ours, none.
mkdir -p "$work/lib-min"
for f in .device/lib/*; do
  [ -e "$f" ] || continue
  case "$(basename "$f")" in libstdc++* | libgcc_s*) ;; *) ln -s "$root/$f" "$work/lib-min/" ;; esac
done
lib_candidates=("$work/lib-min" "$root/.device/lib" "")
[ "$node_source" = path ] || lib_candidates=("$root/.device/lib" "$work/lib-min" "")
lib_label() { case "$1" in "$work/lib-min") echo ".device/lib without libstdc++ and libgcc_s" ;; "") echo "the system's" ;; *) echo .device/lib ;; esac; }
# LD_LIBRARY_PATH with DIR in front of the caller's (DIR may be empty).
lib_path() { local p="$1${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"; echo "${p#:}"; }
node_libs=""
node_ok=0
if [ -n "$node_bin" ]; then
  for libs in "${lib_candidates[@]}"; do
    if LD_LIBRARY_PATH=$(lib_path "$libs") timeout 60 "$node_bin" \
      -e 'require(process.argv[1]).buildInfo()' "$root/build/Release/dino.node" >"$work/node-probe.log" 2>&1; then
      node_libs=$libs
      node_ok=1
      break
    fi
  done
  say "node: $node_bin ($("$node_bin" --version 2>/dev/null || echo 'does not run'), from $node_source); addon loads: $([ $node_ok = 1 ] && echo "yes, with the libraries of $(lib_label "$node_libs")" || echo no)"
  [ "$node_ok" = 1 ] || cat "$work/node-probe.log" | tee -a "$log"
else
  say "no node: none on PATH (20 or newer) and no .device/node.xz (run scripts/device-pack.sh where the checkout comes from)"
fi
node_run=(env "LD_LIBRARY_PATH=$(lib_path "$node_libs")" "$node_bin" dist/scripts/device-check.js)

# The dino-ts stages.
if [ "$node_ok" = 1 ] && [ -f dist/scripts/device-check.js ]; then
  run_stage info 45 250 "${node_run[@]}" --stage info --out "$work/info.json"
  # Parity: again after a crash or a time-out, from the case after the one that was running.
  for try in 1 2 3; do
    resume=()
    [ "$try" -gt 1 ] && resume=(--resume)
    run_stage parity 150 200 "${node_run[@]}" --stage parity --out "$work/parity.json" "${resume[@]}" && break
    status=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["stages"]["parity"]["status"])' "$work/parity.json" 2>/dev/null)
    [ "$status" = incomplete ] || break
    say "parity: the process ended (crash or time limit) during a case; again from the next case"
  done
  run_stage step 90 150 "${node_run[@]}" --stage step --out "$work/step.json"
  run_stage bench 120 100 "${node_run[@]}" --stage bench --out "$work/bench.json" \
    --bench-warmup "$bench_warmup" --bench-steps "$bench_steps" --bench-max-seconds "$bench_max_seconds"
elif [ "$node_ok" = 1 ]; then
  say "dist/scripts/device-check.js is missing: run scripts/device-pack.sh (or npx tsc) where the checkout comes from"
fi

# PyTorch.
if command -v python3 >/dev/null; then
  torch_args=(--warmup "$bench_warmup" --steps "$bench_steps" --max-seconds "$bench_max_seconds")
  run_stage torch-fp16 90 45 python3 bench/gpu_step_torch.py "${torch_args[@]}"
  run_stage torch-fp32 90 0 python3 bench/gpu_step_torch.py --fp32 "${torch_args[@]}"
else
  say "python3 is not on PATH: no PyTorch benchmark"
fi

# The summary, from every stage's JSON, status and output.
export DC_WORK="$work" DC_SUMMARY="$summary" DC_NODE="$node_bin" DC_NODE_SOURCE="$node_source" DC_NODE_LIBS="$([ "$node_ok" = 1 ] && lib_label "$node_libs")" \
  DC_NODE_OK="$node_ok" DC_START="$start" DC_BUDGET="$budget"
if command -v python3 >/dev/null && python3 - <<'PY'
import json, os, time

work, path = os.environ["DC_WORK"], os.environ["DC_SUMMARY"]
TAIL_FAILED, TAIL_PASSED = 6000, 1500


def read(name):
    try:
        with open(os.path.join(work, name), errors="replace") as f:
            return f.read()
    except OSError:
        return None


def load_json(name):
    try:
        return json.loads(read(name) or "")
    except ValueError:
        return None


def last_json_line(name):
    """The last line of a stage's output that is a JSON object (the PyTorch benchmark's result)."""
    for line in reversed((read(name) or "").splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                pass
    return None


def status_record(name):
    """Every try of a stage: exit status, seconds, limit."""
    text = read(name + ".status")
    if text is None:
        return []
    tries = []
    for line in text.splitlines():
        rec = dict(kv.split("=", 1) for kv in line.split())
        rc = rec["rc"]
        tries.append({"exitCode": int(rc) if rc.lstrip("-").isdigit() else rc, "seconds": int(rec["seconds"]),
                      "limit": int(rec["limit"]), "timedOut": rc in ("124", "137")})
    return tries


stages = {}
for name in ("info", "parity", "step", "bench", "torch-fp16", "torch-fp32"):
    tries = status_record(name)
    if not tries:
        stages[name] = {"status": "not run"}
        continue
    if name.startswith("torch"):
        result = last_json_line(name + ".log")
        if isinstance(result, dict) and "error" not in result and "imagesPerSecond" in result:
            st = {"status": "passed" if tries[-1]["exitCode"] == 0 else "failed", "result": result}
        else:
            st = {"status": "failed", **({"result": result} if result else {})}
    else:
        doc = load_json(name + ".json") or {}
        st = dict((doc.get("stages") or {}).get(name) or {"status": "no result"})
    if tries[-1]["exitCode"] == "skipped":
        st["status"] = "not run (out of time)"
    elif tries[-1]["timedOut"]:
        st["recordedStatus"] = st.get("status")
        st["status"] = "timed out"
    st["tries"] = tries
    tail = read(name + ".log") or ""
    st["outputTail"] = tail[-(TAIL_PASSED if st.get("status") in ("passed", "skipped") else TAIL_FAILED):]
    stages[name] = st

info = stages["info"]
build = info.get("buildInfo") or {}
cuda = build.get("cuda") or {}
usable = bool(cuda.get("usable"))
parity, step = stages["parity"], stages["step"]
ok = parity.get("status") == "passed" and step.get("status") == "passed"
if ok:
    exit_code = 0
elif info.get("status") == "skipped" or (os.environ["DC_NODE_OK"] == "1" and info.get("status") == "passed" and not usable):
    exit_code = 2
else:
    exit_code = 1


def bench_numbers(st):
    r = st.get("result") if isinstance(st.get("result"), dict) else None
    if not r or "imagesPerSecond" not in r:
        return None
    keys = ("precision", "imagesPerSecond", "medianStepSeconds", "fastestStepSeconds", "peakBytes", "steps", "warmup", "torch", "gpu")
    return {k: r[k] for k in keys if k in r}


ours, fp16, fp32 = bench_numbers(stages["bench"]), bench_numbers(stages["torch-fp16"]), bench_numbers(stages["torch-fp32"])
ratios = {}
for label, theirs in (("torchFp16", fp16), ("torchFp32", fp32)):
    if ours and theirs:
        ratios[label] = {
            "imagesPerSecond": ours["imagesPerSecond"] / theirs["imagesPerSecond"],
            "peakMemory": ours["peakBytes"] / theirs["peakBytes"] if theirs.get("peakBytes") else None,
        }

failed_ops = {op: {k: s[k] for k in ("cases", "failed", "maxAbsErr", "failures")}
              for op, s in (parity.get("ops") or {}).items() if s.get("failed")}
summary = {
    "ok": ok,
    "exitCode": exit_code,
    "cudaUsable": usable,
    "cudaReason": cuda.get("reason"),
    "cublas": {k: cuda.get(k) for k in ("cublasLoaded", "cublasPath", "cublasReason")},
    "startedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(os.environ["DC_START"]))),
    "seconds": int(time.time()) - int(os.environ["DC_START"]),
    "budgetSeconds": int(os.environ["DC_BUDGET"]),
    "machine": {"nvidiaSmi": read("nvidia-smi.csv") or read("nvidia-smi.txt")},
    "cublasPath": os.environ.get("DINO_CUBLAS_PATH"),
    "node": {"path": os.environ["DC_NODE"], "from": os.environ["DC_NODE_SOURCE"], "libraries": os.environ["DC_NODE_LIBS"],
             "loadsAddon": os.environ["DC_NODE_OK"] == "1", "probe": (read("node-probe.log") or "")[-2000:]},
    "parity": {"status": parity.get("status"), "cases": parity.get("total"), "passed": parity.get("passed"),
               "failed": parity.get("failed"), "crashed": parity.get("crashed"), "failedOps": failed_ops,
               "firstFailures": parity.get("firstFailures")},
    "step": {"status": step.get("status"), **{k: v for k, v in (step.get("result") or {}).items() if k in ("steps", "checked", "failures", "worst")}},
    "benchmark": {"dinoTs": ours, "torchFp16": fp16, "torchFp32": fp32,
                  "ratios": ratios, "note": "ratios are dino-ts / PyTorch: images per second above 1, dino-ts is faster; peak memory above 1, dino-ts uses more"},
    "stages": stages,
}
with open(path + ".tmp", "w") as f:
    json.dump(summary, f, indent=1)
os.replace(path + ".tmp", path)

print("\n===== device check summary")
print(f"CUDA usable: {usable}" + ("" if usable else f" ({cuda.get('reason')})"))
for name, st in stages.items():
    print(f"  {name:11s} {st.get('status')}" + "".join(f"  [exit {t['exitCode']}, {t['seconds']} s]" for t in st.get("tries", [])))
if parity.get("total") is not None:
    print(f"parity cases: {parity.get('passed')} passed, {parity.get('failed')} failed of {parity.get('total')}")
    for op, s in failed_ops.items():
        print(f"  {op}: {s['failed']} of {s['cases']} failed; {s['failures'][0] if s['failures'] else ''}"[:400])
if ours:
    print(f"dino-ts: {ours['imagesPerSecond']:.1f} images/s, peak {ours['peakBytes'] / 2**30:.2f} GiB")
for label, theirs in (("torchFp16", fp16), ("torchFp32", fp32)):
    if theirs:
        r = ratios.get(label, {})
        extra = f"; dino-ts/torch {r['imagesPerSecond']:.2f}x speed, {r['peakMemory']:.2f}x memory" if r.get("peakMemory") else ""
        peak = f", peak {theirs['peakBytes'] / 2**30:.2f} GiB" if theirs.get("peakBytes") else ""
        print(f"{label}: {theirs['imagesPerSecond']:.1f} images/s{peak}{extra}")
print(f"summary: {path}; exit {exit_code}")
with open(os.path.join(work, "exit-code"), "w") as f:
    f.write(str(exit_code))
PY
then
  code=$(cat "$work/exit-code")
else
  # No python3, or the summary could not be made: a minimal summary that says so.
  printf '{"ok": false, "exitCode": 1, "error": "the summary could not be written (python3 missing or failed); see device-check.log", "seconds": %d}\n' \
    "$(($(date +%s) - start))" >"$summary"
  say "the summary could not be made; wrote a minimal $summary"
  code=1
fi
say "done in $(($(date +%s) - start)) s, exit $code"
exit "$code"
