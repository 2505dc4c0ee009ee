"""The PyTorch side of bench/gpu-step.ts: the official DINO training step on a GPU, as main_dino.py's
train_one_epoch runs it in one process, with the official modules of scripts/reference (built as
bench/step_torch.py builds them), eager. By default with autocast float16 and a GradScaler, as the
official code runs by default (use_fp16=True); --fp32 runs it in float32 (no TF32 anywhere unless --tf32,
to compare like for like with dino-ts's float32). Prints one JSON object: images per second, every
timed step, peak memory (torch.cuda.max_memory_allocated over the timed steps), the torch version and
the GPU's name.

    python3 bench/gpu_step_torch.py [--fp32] [--tf32] [--arch vit_small] [--batch 64] [--out-dim 65536]
                                    [--warmup 2] [--steps 10] [--max-seconds S] [--device cuda]

The crops (2 x 224 px and 8 x 96 px per image, random, seeded) are made once in pinned host memory and
uploaded at every step, as the official loader (pin_memory=True) and train_one_epoch do. Single process:
no DistributedDataParallel around the student. --device cpu runs the same step on the CPU in float32
(no autocast: the official code autocasts only on the GPU) at whatever size is given, to check the
script without a GPU.
"""
import argparse
import json
import math
import sys
import time
import warnings

import torch

# bench/ is this script's directory, hence on sys.path: the model builder and main_dino.py's defaults
# are bench/step_torch.py's.
from step_torch import (CLIP_GRAD, DROP_PATH_RATE, EPOCHS, FREEZE_LAST_LAYER, LR, MIN_LR, MOMENTUM_TEACHER,  # noqa: E402
                        TEACHER_TEMP, WARMUP_EPOCHS, WEIGHT_DECAY, WEIGHT_DECAY_END, build)
from reference.dino_train import (DINOLoss, cancel_gradients_last_layer, clip_gradients, cosine_scheduler,  # noqa: E402
                                  ema_update, get_params_groups, set_schedules)

PATCH_SIZE, GLOBAL_SIZE, LOCAL_SIZE, LOCAL_CROPS = 16, 224, 96, 8


def set_tf32(allow):
    """TF32 for float32 matrix products and convolutions, on or off (PyTorch's defaults differ: off for
    products, on for cuDNN convolutions). Returns the settings as read back."""
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    if hasattr(matmul, "fp32_precision"):  # the newer interface; mixing it with the older one is refused
        matmul.fp32_precision = "tf32" if allow else "ieee"
        cudnn.conv.fp32_precision = "tf32" if allow else "ieee"
        return {"matmul": matmul.fp32_precision, "conv": cudnn.conv.fp32_precision}
    matmul.allow_tf32 = allow
    cudnn.allow_tf32 = allow
    return {"matmul allow_tf32": matmul.allow_tf32, "cudnn allow_tf32": cudnn.allow_tf32}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fp32", action="store_true", help="float32 without autocast and GradScaler")
    parser.add_argument("--tf32", action="store_true", help="with --fp32: let products and convolutions use TF32")
    parser.add_argument("--arch", default="vit_small")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--out-dim", type=int, default=65536)
    parser.add_argument("--global-size", type=int, default=GLOBAL_SIZE)
    parser.add_argument("--local-size", type=int, default=LOCAL_SIZE)
    parser.add_argument("--local-crops", type=int, default=LOCAL_CROPS)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="stop timing new steps after this many seconds (at least one timed step)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    gpu = args.device.startswith("cuda")
    if gpu and not torch.cuda.is_available():
        print(json.dumps({"error": "torch.cuda.is_available() is false", "torch": torch.__version__}))
        sys.exit(2)
    use_fp16 = gpu and not args.fp32
    device = torch.device(args.device)

    # The official head uses the original weight_norm, which PyTorch now warns about.
    warnings.filterwarnings("ignore", message=".*weight_norm.*", category=FutureWarning)
    torch.manual_seed(args.seed)
    float32_settings = None
    if gpu:
        torch.backends.cudnn.benchmark = True  # as main_dino.py sets it
        if not use_fp16:  # under autocast PyTorch's defaults stay, as in the official run
            float32_settings = set_tf32(args.tf32)
    B, ncrops = args.batch, args.local_crops + 2
    crops = [torch.randn(B, 3, args.global_size, args.global_size) for _ in range(2)]
    crops += [torch.randn(B, 3, args.local_size, args.local_size) for _ in range(args.local_crops)]
    if gpu:
        crops = [c.pin_memory() for c in crops]

    spec = {"arch": args.arch, "patchSize": PATCH_SIZE, "outDim": args.out_dim}
    t0 = time.perf_counter()
    student = build(spec, DROP_PATH_RATE).to(device)
    teacher = build(spec, 0.0).to(device)
    teacher.load_state_dict(student.state_dict())
    for p in teacher.parameters():
        p.requires_grad = False
    dino_loss = DINOLoss(args.out_dim, ncrops, TEACHER_TEMP, TEACHER_TEMP, 0, EPOCHS).to(device)
    optimizer = torch.optim.AdamW(get_params_groups(student))
    fp16_scaler = torch.amp.GradScaler("cuda") if use_fp16 else None
    # Every step falls in epoch 0, as the first steps of a run do (the last layer frozen).
    niter = args.warmup + args.steps
    lr_s = cosine_scheduler(LR * B / 256, MIN_LR, EPOCHS, niter, WARMUP_EPOCHS)
    wd_s = cosine_scheduler(WEIGHT_DECAY, WEIGHT_DECAY_END, EPOCHS, niter)
    mom_s = cosine_scheduler(MOMENTUM_TEACHER, 1, EPOCHS, niter)
    sync = torch.cuda.synchronize if gpu else (lambda: None)
    sync()
    build_seconds = time.perf_counter() - t0

    warmup_seconds, step_seconds, losses = [], [], []
    loop_start = None
    for it in range(niter):
        timed = it >= args.warmup
        if timed and loop_start is None:
            if gpu:
                torch.cuda.reset_peak_memory_stats()
            loop_start = time.perf_counter()
        if timed and it > args.warmup and args.max_seconds is not None and time.perf_counter() - loop_start > args.max_seconds:
            break
        start = time.perf_counter()
        epoch = it // niter
        # main_dino.py's train_one_epoch, step by step.
        set_schedules(optimizer, lr_s[it], wd_s[it])
        images = [im.to(device, non_blocking=True) for im in crops]
        with torch.autocast("cuda", dtype=torch.float16, enabled=use_fp16):
            teacher_output = teacher(images[:2])  # only the 2 global views pass through the teacher
            student_output = student(images)
            loss = dino_loss(student_output, teacher_output, epoch)
        if not math.isfinite(loss.item()):
            raise RuntimeError(f"the loss is {loss.item()} at iteration {it}")
        optimizer.zero_grad()
        if fp16_scaler is None:
            loss.backward()
            clip_gradients(student, CLIP_GRAD)
            cancel_gradients_last_layer(epoch, student, FREEZE_LAST_LAYER)
            optimizer.step()
        else:
            fp16_scaler.scale(loss).backward()
            fp16_scaler.unscale_(optimizer)  # unscale the gradients before clipping them
            clip_gradients(student, CLIP_GRAD)
            cancel_gradients_last_layer(epoch, student, FREEZE_LAST_LAYER)
            fp16_scaler.step(optimizer)
            fp16_scaler.update()
        ema_update(student, teacher, mom_s[it])
        losses.append(loss.item())
        del images, teacher_output, student_output, loss
        sync()
        (step_seconds if timed else warmup_seconds).append(time.perf_counter() - start)

    s = sorted(step_seconds)
    med = s[len(s) // 2] if len(s) % 2 else (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2
    out = {
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(device) if gpu else "none (CPU)",
        "device": str(device),
        "precision": "autocast float16" if use_fp16 else ("tf32" if gpu and args.tf32 else "float32"),
        "float32Settings": float32_settings,
        "arch": args.arch, "patchSize": PATCH_SIZE, "batch": B, "outDim": args.out_dim,
        "globalSize": args.global_size, "localSize": args.local_size, "localCrops": args.local_crops,
        "warmup": args.warmup, "steps": len(step_seconds),
        "buildSeconds": build_seconds, "warmupSeconds": warmup_seconds, "stepSeconds": step_seconds,
        "medianStepSeconds": med, "fastestStepSeconds": s[0], "imagesPerSecond": B / med,
        "peakBytes": torch.cuda.max_memory_allocated(device) if gpu else None,
        "peakReservedBytes": torch.cuda.max_memory_reserved(device) if gpu else None,
        "losses": losses,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
