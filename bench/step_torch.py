"""The PyTorch side of bench/step.ts: the official DINO training step (main_dino.py's train_one_epoch,
one process, float32 eager, no autocast on the CPU) with the official modules of scripts/reference,
timed phase by phase. Takes its settings as JSON on the command line and prints one JSON object: the
wall and CPU seconds of every timed step, the wall seconds of its phases, the peak RSS increase over the
RSS right before the models are built, and with "profile" the self CPU time of every op by input shapes.
"""
import json
import math
import os
import sys
import time
import warnings

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))
from reference import dino_model  # noqa: E402
from reference.dino_train import (DINOLoss, cancel_gradients_last_layer, clip_gradients, cosine_scheduler,  # noqa: E402
                                  ema_update, get_params_groups, set_schedules)

# main_dino.py's defaults
EPOCHS, LR, MIN_LR, WARMUP_EPOCHS = 100, 0.0005, 1e-6, 10
WEIGHT_DECAY, WEIGHT_DECAY_END, MOMENTUM_TEACHER = 0.04, 0.4, 0.996
TEACHER_TEMP, CLIP_GRAD, FREEZE_LAST_LAYER, DROP_PATH_RATE = 0.04, 3.0, 1, 0.1


def current_rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss():
    """This program's peak RSS. Not getrusage's ru_maxrss: that counts the parent's RSS at the fork
    too (Linux carries the forked copy's high-water mark through exec), and the parent is the
    benchmark's Node process, which may hold far more than this one."""
    with open("/proc/self/status") as f:
        hwm = next(line for line in f if line.startswith("VmHWM:"))
    return int(hwm.split()[1]) * 1024  # kB


def build(spec, drop_path_rate):
    backbone = getattr(dino_model, spec["arch"])(patch_size=spec["patchSize"], drop_path_rate=drop_path_rate)
    head = dino_model.DINOHead(backbone.embed_dim, spec["outDim"], use_bn=False, norm_last_layer=True)
    return dino_model.MultiCropWrapper(backbone, head)


def main():
    spec = json.loads(sys.argv[1])
    # The official head uses the original weight_norm, which PyTorch now warns about.
    warnings.filterwarnings("ignore", message=".*weight_norm.*", category=FutureWarning)
    torch.set_num_threads(spec["threads"])
    torch.manual_seed(spec["seed"])
    B, ncrops = spec["batch"], spec["localCrops"] + 2
    crops = [torch.randn(B, 3, spec["globalSize"], spec["globalSize"]) for _ in range(2)]
    crops += [torch.randn(B, 3, spec["localSize"], spec["localSize"]) for _ in range(spec["localCrops"])]

    rss_before = current_rss()
    student = build(spec, DROP_PATH_RATE)
    teacher = build(spec, 0.0)
    teacher.load_state_dict(student.state_dict())
    for p in teacher.parameters():
        p.requires_grad = False
    loss_fn = DINOLoss(spec["outDim"], ncrops, TEACHER_TEMP, TEACHER_TEMP, 0, EPOCHS)
    optimizer = torch.optim.AdamW(get_params_groups(student))
    niter = spec["itersPerEpoch"]
    lr_s = cosine_scheduler(LR * B / 256, MIN_LR, EPOCHS, niter, WARMUP_EPOCHS)
    wd_s = cosine_scheduler(WEIGHT_DECAY, WEIGHT_DECAY_END, EPOCHS, niter)
    mom_s = cosine_scheduler(MOMENTUM_TEACHER, 1, EPOCHS, niter)

    wall, cpu, phases = [], [], []
    profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True)
    for it in range(spec["warmup"] + spec["steps"]):
        epoch = it // niter
        if spec["profile"] and it == spec["warmup"]:
            profiler.start()
        cpu_start = time.process_time()
        t = [time.perf_counter()]
        set_schedules(optimizer, lr_s[it], wd_s[it])
        with torch.no_grad():
            teacher_output = teacher(crops[:2])
        t.append(time.perf_counter())
        student_output = student(crops)
        t.append(time.perf_counter())
        loss = loss_fn(student_output, teacher_output, epoch)  # updates the centre too
        if not math.isfinite(loss.item()):
            raise RuntimeError(f"the loss is {loss.item()} at iteration {it}")
        t.append(time.perf_counter())
        optimizer.zero_grad()
        loss.backward()
        t.append(time.perf_counter())
        clip_gradients(student, CLIP_GRAD)
        cancel_gradients_last_layer(epoch, student, FREEZE_LAST_LAYER)
        t.append(time.perf_counter())
        optimizer.step()
        t.append(time.perf_counter())
        ema_update(student, teacher, mom_s[it])
        del teacher_output, student_output, loss
        t.append(time.perf_counter())
        if it >= spec["warmup"]:
            wall.append(t[-1] - t[0])
            cpu.append(time.process_time() - cpu_start)
            phases.append([b - a for a, b in zip(t, t[1:])])
    out = {"wall": wall, "cpu": cpu, "phases": phases, "peakRssIncrease": peak_rss() - rss_before, "torch": torch.__version__,
           "threads": torch.get_num_threads()}
    if spec["profile"]:
        profiler.stop()
        out["profile"] = [{"op": e.key, "shapes": str(e.input_shapes), "calls": e.count, "seconds": e.self_cpu_time_total / 1e6}
                          for e in profiler.key_averages(group_by_input_shape=True)]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
