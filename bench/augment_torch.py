"""The official side of bench/augment.ts: DINO's DataAugmentationDINO (2 global crops of 224 px, 8 local
crops of 96 px) on JPEG files, as torchvision runs it on PIL images, with decoding.

torchvision need not be installed: its transforms on PIL images are Pillow calls plus random draws,
and scripts/fixtures/augment.py writes out torchvision 0.8's code path (the draws from torch's
generator and Python's random in torchvision's order, ImageEnhance, convert, ImageFilter.GaussianBlur,
ImageOps.solarize, ToTensor + Normalize in PyTorch). The crops are resized with one Image.resize call
each, as torchvision does (whichever pass order this Pillow uses). Where torchvision is installed, its
own transforms run instead.

Takes its settings as JSON on the command line, then answers one request per line of stdin with one
JSON line on stdout, so that the two sides can take turns in one run:
  {"single": passes}                        decode + augment every image `passes` times in this process
  {"loader": {"workers": N, "batch": B}}    one epoch of a torch DataLoader with N worker processes
"""
import json
import os
import random
import sys
import time

import torch
from PIL import Image, ImageFilter, ImageOps

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))
from fixtures.augment import apply_crop, draw_dino_params, normalize  # noqa: E402


def pil_loader(path):
    """torchvision.datasets.folder.pil_loader."""
    with open(path, "rb") as f:
        img = Image.open(f)
        return img.convert("RGB")


def pil_resize(img, size):
    return img.resize(size, Image.BICUBIC)


class WrittenOutAugmentation:
    """DataAugmentationDINO at the official parameters, torchvision's PIL code path written out."""

    name = "torchvision's PIL code path written out (torchvision is not installed)"

    def __call__(self, img):
        params = draw_dino_params(img.width, img.height, None, random, 224, 96, 8)
        return [normalize(apply_crop(img, p, pil_resize)) for p in params]


class GaussianBlur:
    """DINO's utils.GaussianBlur."""

    def __init__(self, p):
        self.p = p

    def __call__(self, img):
        if random.random() > self.p:
            return img
        return img.filter(ImageFilter.GaussianBlur(radius=random.uniform(0.1, 2.0)))


class Solarization:
    """DINO's utils.Solarization."""

    def __init__(self, p):
        self.p = p

    def __call__(self, img):
        return ImageOps.solarize(img) if random.random() < self.p else img


class TorchvisionAugmentation:
    """DataAugmentationDINO as main_dino.py writes it, on the installed torchvision."""

    def __init__(self):
        import torchvision
        from torchvision import transforms

        self.name = f"torchvision {torchvision.__version__}"
        flip_and_color_jitter = transforms.Compose([
            transforms.RandomHorizontalFlip(p=0.5),
            transforms.RandomApply([transforms.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)], p=0.8),
            transforms.RandomGrayscale(p=0.2),
        ])
        normalize_ = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
        bicubic = transforms.InterpolationMode.BICUBIC

        def crop(size, scale):
            return transforms.RandomResizedCrop(size, scale=scale, interpolation=bicubic)

        self.global1 = transforms.Compose([crop(224, (0.4, 1.0)), flip_and_color_jitter, GaussianBlur(1.0), normalize_])
        self.global2 = transforms.Compose([crop(224, (0.4, 1.0)), flip_and_color_jitter, GaussianBlur(0.1), Solarization(0.2), normalize_])
        self.local = transforms.Compose([crop(96, (0.05, 0.4)), flip_and_color_jitter, GaussianBlur(0.5), normalize_])

    def __call__(self, img):
        return [self.global1(img), self.global2(img)] + [self.local(img) for _ in range(8)]


def official_augmentation():
    try:
        return TorchvisionAugmentation()
    except ImportError:
        return WrittenOutAugmentation()


class Files(torch.utils.data.Dataset):
    def __init__(self, paths, transform):
        self.paths = paths
        self.transform = transform

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        return self.transform(pil_loader(self.paths[i])), 0


def single(paths, transform, passes):
    """Seconds (wall and CPU) per image of each pass."""
    out = []
    for _ in range(passes):
        wall, cpu = time.perf_counter(), time.process_time()
        for path in paths:
            transform(pil_loader(path))
        out.append({"wall": (time.perf_counter() - wall) / len(paths), "cpu": (time.process_time() - cpu) / len(paths)})
    return out


def main():
    spec = json.loads(sys.argv[1])
    torch.set_num_threads(1)
    torch.manual_seed(spec["seed"])
    random.seed(spec["seed"])
    transform = official_augmentation()
    loaders = {}
    print(json.dumps({"ready": True, "pipeline": transform.name, "pillow": Image.__version__, "torch": torch.__version__}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if "single" in request:
            print(json.dumps({"passes": single(spec["images"], transform, request["single"])}), flush=True)
        else:
            workers, batch = request["loader"]["workers"], request["loader"]["batch"]
            key = (workers, batch)
            if key not in loaders:
                dataset = Files(spec["loaderImages"], transform)
                loaders[key] = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers,
                                                           drop_last=True, persistent_workers=True)
            t = time.perf_counter()
            images = sum(len(crops[0]) for crops, _ in loaders[key])
            print(json.dumps({"images": images, "wall": time.perf_counter() - t}), flush=True)


if __name__ == "__main__":
    main()
