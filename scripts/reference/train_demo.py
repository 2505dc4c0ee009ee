"""`dino demo`'s training and k-NN evaluation made with the official DINO code in PyTorch, so that the
k-NN accuracy of the two implementations can be compared on the same data, settings and number of
steps.

    python3 scripts/reference/train_demo.py [--epochs N] [--threads N] [--output-json FILE]
    python3 scripts/reference/train_demo.py --config SETTINGS.json     (instead of the demo's settings)
    python3 scripts/reference/train_demo.py --out-dim 4096 --lr 0.001  (any setting, as for `dino train`)

The settings are DEMO_TRAIN_ARGS, read from lib/cli/demo.ts when the script starts, or a JSON object of
`dino train` option names (--config); options given on the command line override either, and
everything else keeps the official default. The run is main_dino.py in one process and in float32:
scripts/reference (the official ViT, head, multi-crop wrapper, loss, schedules, parameter groups,
clipping, last-layer freeze and EMA) trained on the bundled Fashion-MNIST subset (data/fashion-mnist,
5,000 training images, 28x28 gray repeated to RGB), each epoch in a new random order with the last
incomplete batch dropped, every image augmented by DataAugmentationDINO as torchvision 0.8 runs it
(scripts/fixtures/augment.py; the torchvision wheels for this torch are CUDA builds).

Then weighted k-NN (eval_knn.py: k = 10 and 20, T = 0.07, L2-normalised features, Resize(crop * 256 /
224, bicubic) + CenterCrop + Normalize; the crop is the model's image size) over the 5,000 training
and 1,000 test images, for the trained teacher's CLS token, the same network at the student's initial
weights, and the raw pixels. The augmentation, data order and initialisation come from other random
generators than `dino demo`'s, so the accuracies agree within run-to-run noise, not exactly.
"""
import argparse
import json
import math
import os
import random
import re
import sys
import time
import warnings

import torch
import torch.nn.functional as F
from PIL import Image

SCRIPTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, SCRIPTS)
from fixtures.augment import apply_crop, draw_dino_params, normalize  # noqa: E402
from fixtures.knn import fashion_mnist_pixels, knn_classifier, read_idx  # noqa: E402
from reference.dino_model import DINOHead, MultiCropWrapper, VisionTransformer, vit_base, vit_small, vit_tiny  # noqa: E402
from reference.dino_train import (DINOLoss, cancel_gradients_last_layer, clip_gradients, cosine_scheduler,  # noqa: E402
                                  ema_update, get_params_groups, set_schedules)

DEMO_SOURCE = os.path.join(SCRIPTS, "..", "lib", "cli", "demo.ts")
ARCHS = {"vit_tiny": vit_tiny, "vit_small": vit_small, "vit_base": vit_base}
BOOL = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}


def pair(value):
    values = value if isinstance(value, list) else str(value).replace(",", " ").split()
    if len(values) != 2:
        raise ValueError(f"expected two numbers, got {value!r}")
    return tuple(float(v) for v in values)


def boolean(value):
    return value if isinstance(value, bool) else BOOL[str(value).lower()]


# `dino train`'s training options with main_dino.py's defaults (None: no default).
SETTINGS = {
    "arch": (str, "vit_small"),
    "patch-size": (int, 16),
    "out-dim": (int, 65536),
    "norm-last-layer": (boolean, True),
    "momentum-teacher": (float, 0.996),
    "use-bn-in-head": (boolean, False),
    "warmup-teacher-temp": (float, 0.04),
    "teacher-temp": (float, 0.04),
    "warmup-teacher-temp-epochs": (int, 0),
    "weight-decay": (float, 0.04),
    "weight-decay-end": (float, 0.4),
    "clip-grad": (float, 3.0),
    "batch-size": (int, 64),
    "epochs": (int, 100),
    "freeze-last-layer": (int, 1),
    "lr": (float, 0.0005),
    "warmup-epochs": (int, 10),
    "min-lr": (float, 1e-6),
    "optimizer": (str, "adamw"),
    "drop-path-rate": (float, 0.1),
    "global-crops-scale": (pair, (0.4, 1.0)),
    "local-crops-number": (int, 8),
    "local-crops-scale": (pair, (0.05, 0.4)),
    "global-crops-size": (int, 224),
    "local-crops-size": (int, 96),
    "seed": (int, 0),
    "embed-dim": (int, None),
    "depth": (int, None),
    "num-heads": (int, None),
    "img-size": (int, None),
    "head-hidden-dim": (int, 2048),
    "head-bottleneck-dim": (int, 256),
}
ALIASES = {"batch_size_per_gpu": "batch-size", "batch-size-per-gpu": "batch-size"}
# `dino train` options about the run rather than the training; what they choose is fixed here.
RUN_OPTIONS = {"data-path", "output-dir", "saveckp-freq", "num-workers", "device", "resume", "log-freq",
               "max-iterations", "use-fp16"}


def demo_train_args(path):
    """The DEMO_TRAIN_ARGS record of lib/cli/demo.ts: string keys (quoted or not) to string values."""
    with open(path) as f:
        source = f.read()
    block = re.search(r"DEMO_TRAIN_ARGS\b[^=]*=\s*\{(.*?)\n\};", source, re.S)
    if block is None:
        sys.exit(f"{path}: no DEMO_TRAIN_ARGS record found")
    return {quoted or bare: value for quoted, bare, value in
            re.findall(r"(?:'([^']+)'|([A-Za-z_][\w-]*))\s*:\s*'([^']*)'", block.group(1))}


def resolve(raw):
    """Settings from option names to values (text or JSON), checked and converted; defaults for the rest."""
    settings = {name: default for name, (_, default) in SETTINGS.items()}
    for name, value in raw.items():
        name = ALIASES.get(name, name.replace("_", "-"))
        if name in RUN_OPTIONS:
            if name == "data-path" and value != "fashion-mnist":
                sys.exit(f"--data-path {value}: only the bundled Fashion-MNIST subset is supported")
            if name == "use-fp16" and boolean(value):
                sys.exit("--use-fp16 true: this run is float32, as `dino train` is")
            continue
        if name not in SETTINGS:
            sys.exit(f"unknown setting '{name}'")
        settings[name] = SETTINGS[name][0](value)
    if settings["optimizer"] != "adamw":
        sys.exit(f"--optimizer {settings['optimizer']}: only adamw is supported")
    shape = [settings[n] is None for n in ("embed-dim", "depth", "num-heads")]
    if any(shape) and not all(shape):
        sys.exit("--embed-dim, --depth and --num-heads go together: give all three or none")
    if settings["embed-dim"] is None and settings["arch"] not in ARCHS:
        sys.exit(f"--arch {settings['arch']}: one of {', '.join(ARCHS)}")
    if settings["img-size"] is None:
        settings["img-size"] = settings["global-crops-size"]
    return settings


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "),
                                     epilog="settings, as for `dino train` (kebab- or snake_case): "
                                            + " ".join(f"--{name}" for name in SETTINGS))
    parser.add_argument("--config", metavar="FILE", help="a JSON object of settings, instead of DEMO_TRAIN_ARGS")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--output-json", metavar="FILE", help="write the settings, timings and k-NN results here")
    parser.add_argument("--log-freq", type=int, default=20, help="print a progress line every this many iterations")
    parser.add_argument("--eval-batch-size", type=int, default=250, help="images per forward pass in the evaluation")
    for name, (kind, _) in SETTINGS.items():
        names = [f"--{name}"] + ([f"--{name.replace('-', '_')}"] if "-" in name else [])
        parser.add_argument(*names, dest="setting_" + name, nargs=2 if kind is pair else None, metavar="X",
                            help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.config:
        with open(args.config) as f:
            raw = json.load(f)
    else:
        raw = demo_train_args(DEMO_SOURCE)
    raw.update({name: value for name in SETTINGS if (value := getattr(args, "setting_" + name)) is not None})
    return args, resolve(raw)


def backbone(s, drop_path_rate):
    common = dict(img_size=s["img-size"], patch_size=s["patch-size"], drop_path_rate=drop_path_rate)
    if s["embed-dim"] is not None:
        return VisionTransformer(embed_dim=s["embed-dim"], depth=s["depth"], num_heads=s["num-heads"], **common)
    return ARCHS[s["arch"]](**common)


def network(s, drop_path_rate):
    vit = backbone(s, drop_path_rate)
    head = DINOHead(vit.embed_dim, s["out-dim"], use_bn=s["use-bn-in-head"], norm_last_layer=s["norm-last-layer"],
                    hidden_dim=s["head-hidden-dim"], bottleneck_dim=s["head-bottleneck-dim"])
    return MultiCropWrapper(vit, head)


def augment(img, s, gen, py):
    """DataAugmentationDINO: [global 1, global 2, local 1..n], each normalised to (3, size, size)."""
    params = draw_dino_params(img.width, img.height, gen, py, s["global-crops-size"], s["local-crops-size"],
                              s["local-crops-number"], s["global-crops-scale"], s["local-crops-scale"])
    return [normalize(apply_crop(img, p)) for p in params]


def train(s, images, log_freq):
    """main_dino.py's training loop; returns the student's initial backbone weights and the teacher."""
    torch.manual_seed(s["seed"])
    random.seed(s["seed"])
    student, teacher = network(s, s["drop-path-rate"]), network(s, 0.0)
    teacher.load_state_dict(student.state_dict())
    for p in teacher.parameters():
        p.requires_grad = False
    initial = {k: v.clone() for k, v in student.backbone.state_dict().items()}

    epochs, batch = s["epochs"], s["batch-size"]
    ncrops = s["local-crops-number"] + 2
    niter = len(images) // batch
    if niter == 0:
        sys.exit(f"--batch-size {batch} is larger than the {len(images)} training images")
    loss_fn = DINOLoss(s["out-dim"], ncrops, s["warmup-teacher-temp"], s["teacher-temp"],
                       s["warmup-teacher-temp-epochs"], epochs)
    optimizer = torch.optim.AdamW(get_params_groups(student))
    lr_s = cosine_scheduler(s["lr"] * batch / 256, s["min-lr"], epochs, niter, s["warmup-epochs"])
    wd_s = cosine_scheduler(s["weight-decay"], s["weight-decay-end"], epochs, niter)
    mom_s = cosine_scheduler(s["momentum-teacher"], 1, epochs, niter)

    # Order and augmentation from their own generators, so that they do not depend on the model's draws.
    order_gen = torch.Generator().manual_seed(s["seed"])
    aug_gen = torch.Generator().manual_seed(s["seed"] + 1)
    py = random.Random(s["seed"])
    print(f"training: {epochs} epochs of {niter} iterations, batch {batch}, {ncrops} crops per image")
    start = time.perf_counter()
    augment_seconds, losses = 0.0, []
    for epoch in range(epochs):
        order = torch.randperm(len(images), generator=order_gen).tolist()
        for i in range(niter):
            it = epoch * niter + i
            t = time.perf_counter()
            views = [augment(images[j], s, aug_gen, py) for j in order[i * batch:(i + 1) * batch]]
            crops = [torch.stack([v[c] for v in views]) for c in range(ncrops)]
            augment_seconds += time.perf_counter() - t

            set_schedules(optimizer, lr_s[it], wd_s[it])
            teacher_output = teacher(crops[:2])
            student_output = student(crops)
            loss = loss_fn(student_output, teacher_output, epoch)
            if not math.isfinite(loss.item()):
                sys.exit(f"loss is {loss.item()} at iteration {it}, stopping")
            optimizer.zero_grad()
            loss.backward()
            if s["clip-grad"]:
                clip_gradients(student, s["clip-grad"])
            cancel_gradients_last_layer(epoch, student, s["freeze-last-layer"])
            optimizer.step()
            ema_update(student, teacher, mom_s[it])
            losses.append(loss.item())

            if (it + 1) % log_freq == 0 or i == niter - 1:
                elapsed = time.perf_counter() - start
                print(f"epoch {epoch} it {i + 1}/{niter} loss {loss.item():.4f} lr {lr_s[it]:.3g} wd {wd_s[it]:.4f} "
                      f"m {mom_s[it]:.5f} | {(it + 1) * batch / elapsed:.1f} images/s "
                      f"({augment_seconds / elapsed:.0%} augmentation)", flush=True)
    seconds = time.perf_counter() - start
    stats = {"iterations": epochs * niter, "train_seconds": seconds, "augment_seconds": augment_seconds,
             "images_per_second": epochs * niter * batch / seconds, "final_loss": losses[-1],
             "last_epoch_loss": sum(losses[-niter:]) / niter}
    print(f"trained in {seconds:.1f} s: {stats['images_per_second']:.1f} images/s, "
          f"last epoch loss {stats['last_epoch_loss']:.4f}")
    return initial, teacher.backbone, stats


@torch.no_grad()
def cls_features(vit, pixels, crop, batch):
    vit.eval()
    x = pixels.view(-1, 3, crop, crop)
    return F.normalize(torch.cat([vit(x[i:i + batch]) for i in range(0, len(x), batch)]), dim=1, p=2)


def knn(train, train_labels, test, test_labels):
    return [{key: r[key] for key in ("k", "top1", "top5")} for r in
            (knn_classifier(train, train_labels, test, test_labels, k, 0.07, 10, margins=False) for k in (10, 20))]


def evaluate(s, initial, teacher_backbone, batch):
    """k-NN of the trained teacher, the initial weights and the raw 28x28 pixels."""
    def split(prefix, crop):
        n = len(read_idx(f"{prefix}-labels-idx1-ubyte.gz"))
        return fashion_mnist_pixels(prefix, n, round(crop * 256 / 224), crop)

    crop = s["img-size"]
    (train, train_labels), (test, test_labels) = split("train", crop), split("t10k", crop)
    start = backbone(s, 0.0)
    start.load_state_dict(initial)
    results = {}
    for name, vit in [("trained teacher", teacher_backbone), ("random init", start)]:
        results[name] = knn(cls_features(vit, train, crop, batch), train_labels,
                            cls_features(vit, test, crop, batch), test_labels)
    if crop != 28:
        (train, train_labels), (test, test_labels) = split("train", 28), split("t10k", 28)
    results["raw pixels"] = knn(F.normalize(train, dim=1, p=2), train_labels, F.normalize(test, dim=1, p=2), test_labels)
    return results, {"train": len(train_labels), "test": len(test_labels)}


def flag_text(value):
    return " ".join(map(str, value)) if isinstance(value, tuple) else json.dumps(value) if isinstance(value, bool) else value


def main():
    args, s = parse_args()
    # DINOHead keeps the official weight-norm module (its state-dict keys); its deprecation is no news here.
    warnings.filterwarnings("ignore", message=".*weight_norm.*", category=FutureWarning)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    shown = {k: v for k, v in s.items() if v is not None and not (k == "arch" and s["embed-dim"] is not None)}
    print("settings: " + " ".join(f"--{k} {flag_text(v)}" for k, v in shown.items()))
    images = [Image.fromarray(a).convert("RGB") for a in read_idx("train-images-idx3-ubyte.gz")]
    initial, teacher_backbone, stats = train(s, images, args.log_freq)
    results, sizes = evaluate(s, initial, teacher_backbone, args.eval_batch_size)
    stats["total_seconds"] = time.perf_counter() - start

    print(f"\nk-NN top-1 on the {sizes['test']} test images, {sizes['train']} training images, T = 0.07 (PyTorch reference)")
    print("  features            k=10    k=20")
    for name, rows in results.items():
        print(f"  {name:<18} " + "   ".join(f"{r['top1']:5.1f}" for r in rows))
    print(f"total time {stats['total_seconds']:.1f} s (training {stats['train_seconds']:.1f} s)")
    if args.output_json:
        with open(args.output_json, "w") as f:
            json.dump({"settings": s, "threads": args.threads, **stats, "images": sizes, "knn": results}, f, indent=2)
        print(f"wrote {args.output_json}")


if __name__ == "__main__":
    main()
