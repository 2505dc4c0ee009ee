"""Writes the PyTorch reference fixtures the parity tests compare against.

    python3 scripts/make-fixtures.py [--out DIR] [FAMILY ...]

Each module in scripts/fixtures/ (other than common) defines cases(gen) -> {name: case}; its cases go
to DIR/<module>.json (DIR defaults to test/fixtures/ops). PyTorch runs on the CPU in float32 with a
fixed seed, so the committed files are reproducible; CI regenerates them and runs the tests on both.
"""
import argparse
import importlib
import json
import os
import pkgutil
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(HERE, "..", "test", "fixtures", "ops"))
    parser.add_argument("families", nargs="*", help="only these modules of scripts/fixtures")
    args = parser.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    names = [m.name for m in pkgutil.iter_modules([os.path.join(HERE, "fixtures")]) if m.name != "common"]
    for name in sorted(args.families or names):
        module = importlib.import_module("fixtures." + name)
        gen = torch.Generator().manual_seed(1234)
        cases = module.cases(gen)
        path = os.path.join(args.out, name + ".json")
        with open(path, "w") as f:
            json.dump({"torch": torch.__version__, "cases": cases}, f, separators=(",", ":"))
        print(f"{os.path.relpath(path)}: {len(cases)} cases")


if __name__ == "__main__":
    main()
