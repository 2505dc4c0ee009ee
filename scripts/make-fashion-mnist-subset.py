"""Writes the Fashion-MNIST subset committed under data/fashion-mnist/.

    python3 scripts/make-fashion-mnist-subset.py [--source DIR] [--out DIR] [--train N] [--test N]

The source is Debian's dataset-fashion-mnist (the full 60,000 + 10,000 images, gzipped IDX files under
/usr/share/datasets/fashion-mnist). Without installing it:

    apt-get update && apt-get download dataset-fashion-mnist
    dpkg -x dataset-fashion-mnist_*.deb /tmp/fashion-mnist
    python3 scripts/make-fashion-mnist-subset.py --source /tmp/fashion-mnist/usr/share/datasets/fashion-mnist

Selection: for each split, the first N images of each of the 10 classes in file order (N = 500 for
train, 100 for test), kept in file order. The output is gzipped IDX with a zero timestamp and no file
name in the gzip header, so the same source gives the same bytes.
"""
import argparse
import gzip
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CLASSES = 10


def read_idx(path, magic):
    with gzip.open(path, "rb") as f:
        data = f.read()
    if data[:4] != magic:
        raise SystemExit(f"{path}: magic {data[:4].hex()} is not {magic.hex()}")
    ndim = magic[3]
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return dims, data[4 + 4 * ndim :]


def write_idx(path, magic, dims, payload):
    header = magic + struct.pack(">" + "I" * len(dims), *dims)
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as f:
        f.write(header + payload)


def subset(source, out, split, per_class):
    (n, rows, cols), pixels = read_idx(os.path.join(source, f"{split}-images-idx3-ubyte.gz"), b"\x00\x00\x08\x03")
    (n_labels,), labels = read_idx(os.path.join(source, f"{split}-labels-idx1-ubyte.gz"), b"\x00\x00\x08\x01")
    if n != n_labels or len(pixels) != n * rows * cols or len(labels) != n:
        raise SystemExit(f"{split}: inconsistent sizes")
    taken = [0] * CLASSES
    keep = []
    for i, label in enumerate(labels):
        if taken[label] < per_class:
            taken[label] += 1
            keep.append(i)
    if taken != [per_class] * CLASSES:
        raise SystemExit(f"{split}: not enough images per class: {taken}")
    size = rows * cols
    write_idx(os.path.join(out, f"{split}-images-idx3-ubyte.gz"), b"\x00\x00\x08\x03", (len(keep), rows, cols),
              b"".join(pixels[i * size : (i + 1) * size] for i in keep))
    write_idx(os.path.join(out, f"{split}-labels-idx1-ubyte.gz"), b"\x00\x00\x08\x01", (len(keep),),
              bytes(labels[i] for i in keep))
    print(f"{split}: {len(keep)} images ({per_class} per class) of {n}; last index taken {keep[-1]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--out", default=os.path.join(HERE, "..", "data", "fashion-mnist"))
    parser.add_argument("--train", type=int, default=500, help="images per class from the training set")
    parser.add_argument("--test", type=int, default=100, help="images per class from the test set")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    subset(args.source, args.out, "train", args.train)
    subset(args.source, args.out, "t10k", args.test)


if __name__ == "__main__":
    main()
