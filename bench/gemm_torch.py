"""The PyTorch side of bench/gemm.ts: times torch.matmul on the CPU for the shapes given as JSON on
the command line and prints one JSON object of median seconds per shape name."""
import json
import statistics
import sys
import time

import torch


def operand(batch, rows, cols, trans):
    shape = (cols, rows) if trans else (rows, cols)
    t = torch.randn(*(([batch] if batch > 1 else []) + list(shape)))
    return t.transpose(-1, -2) if trans else t


def main():
    spec = json.loads(sys.argv[1])
    torch.set_num_threads(spec["threads"])
    out = {}
    with torch.no_grad():
        for s in spec["shapes"]:
            a = operand(s["batch"], s["M"], s["K"], s["transA"])
            b = operand(s["batch"], s["K"], s["N"], s["transB"])
            c = torch.empty(*(([s["batch"]] if s["batch"] > 1 else []) + [s["M"], s["N"]]))
            for _ in range(spec["warmup"]):
                torch.matmul(a, b, out=c)
            times = []
            for _ in range(spec["reps"]):
                t0 = time.perf_counter()
                torch.matmul(a, b, out=c)
                times.append(time.perf_counter() - t0)
            out[s["name"]] = statistics.median(times)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
