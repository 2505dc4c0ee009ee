"""Two DINO training steps with the official modules in PyTorch (scripts/reference), written as a
safetensors file that test/train/dino-step.test.ts replays in our engine.

    python3 scripts/reference/dino_step.py CONFIG OUT.safetensors      (CONFIG: tiny | vit_tiny)

The file holds the initial student state dict (init.*), the crops of each step (step{s}.crop{i}), the
student's drop-path masks in the order they were drawn (step{s}.mask{k}), the head outputs, every raw
parameter gradient before clipping, the student, teacher and centre after each step, and as metadata
(JSON) the configuration, the losses, the per-step schedules and the gradient norms.
"""
import json
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from reference.dino_model import DINOHead, MultiCropWrapper, VisionTransformer, record_drop_path_masks  # noqa: E402
from reference.dino_train import (DINOLoss, cancel_gradients_last_layer, clip_gradients, cosine_scheduler,  # noqa: E402
                                  ema_update, get_params_groups, set_schedules)

# Keys mirror DinoConfig in lib/train/trainer.ts. lr is chosen so that lr * batch / 256 = 1e-3, a
# visible update; two epochs of one iteration each put step 1 in epoch 0 (last layer frozen,
# warm-up teacher temperature) and step 2 in epoch 1.
CONFIGS = {
    "tiny": dict(patchSize=8, embedDim=32, depth=2, numHeads=2, imgSize=32, outDim=64, headHiddenDim=48,
                 headBottleneckDim=16, useBnInHead=False, normLastLayer=False, globalSize=32, localSize=16),
    "vit_tiny": dict(patchSize=16, embedDim=192, depth=12, numHeads=3, imgSize=224, outDim=512, headHiddenDim=2048,
                     headBottleneckDim=256, useBnInHead=False, normLastLayer=True, globalSize=64, localSize=32),
}
COMMON = dict(batchSize=2, localCropsNumber=4, epochs=2, itersPerEpoch=1, warmupEpochs=0, lr=1e-3 * 256 / 2,
              minLr=1e-6, weightDecay=0.04, weightDecayEnd=0.4, momentumTeacher=0.996, warmupTeacherTemp=0.04,
              teacherTemp=0.07, warmupTeacherTempEpochs=1, clipGrad=0.3, freezeLastLayer=1, dropPathRate=0.1)


def build(c, drop_path_rate):
    backbone = VisionTransformer(img_size=c["imgSize"], patch_size=c["patchSize"], embed_dim=c["embedDim"],
                                 depth=c["depth"], num_heads=c["numHeads"], drop_path_rate=drop_path_rate)
    head = DINOHead(c["embedDim"], c["outDim"], use_bn=c["useBnInHead"], norm_last_layer=c["normLastLayer"],
                    hidden_dim=c["headHiddenDim"], bottleneck_dim=c["headBottleneckDim"])
    return MultiCropWrapper(backbone, head)


def write_safetensors(path, tensors, metadata):
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        data = t.detach().to(torch.float32).contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {k: json.dumps(v) for k, v in metadata.items()}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for b in blobs:
            f.write(b)


def main():
    name, out = sys.argv[1], sys.argv[2]
    c = {**COMMON, **CONFIGS[name]}
    torch.manual_seed(0)
    torch.set_num_threads(1)
    student = build(c, c["dropPathRate"])
    teacher = build(c, 0.0)
    teacher.load_state_dict(student.state_dict())
    for p in teacher.parameters():
        p.requires_grad = False
    ncrops = c["localCropsNumber"] + 2
    loss_fn = DINOLoss(c["outDim"], ncrops, c["warmupTeacherTemp"], c["teacherTemp"], c["warmupTeacherTempEpochs"],
                       c["epochs"])
    optimizer = torch.optim.AdamW(get_params_groups(student))
    niter = c["itersPerEpoch"]
    lr_s = cosine_scheduler(c["lr"] * c["batchSize"] / 256, c["minLr"], c["epochs"], niter, c["warmupEpochs"])
    wd_s = cosine_scheduler(c["weightDecay"], c["weightDecayEnd"], c["epochs"], niter)
    mom_s = cosine_scheduler(c["momentumTeacher"], 1, c["epochs"], niter)

    tensors = {"init." + k: v.clone() for k, v in student.state_dict().items()}
    meta = {"config": c, "steps": []}
    for step in range(c["epochs"] * niter):
        epoch = step // niter
        B = c["batchSize"]
        crops = [torch.randn(B, 3, c["globalSize"], c["globalSize"]) for _ in range(2)]
        crops += [torch.randn(B, 3, c["localSize"], c["localSize"]) for _ in range(c["localCropsNumber"])]
        set_schedules(optimizer, lr_s[step], wd_s[step])
        teacher_out = teacher(crops[:2])
        with record_drop_path_masks() as masks:
            student_out = student(crops)
        loss = loss_fn(student_out, teacher_out, epoch)
        optimizer.zero_grad()
        loss.backward()
        grads = {k: p.grad.clone() for k, p in student.named_parameters() if p.grad is not None}
        norms = clip_gradients(student, c["clipGrad"])
        cancel_gradients_last_layer(epoch, student, c["freezeLastLayer"])
        optimizer.step()
        ema_update(student, teacher, mom_s[step])
        s = f"step{step}."
        tensors.update({f"{s}crop{i}": x for i, x in enumerate(crops)})
        tensors.update({f"{s}mask{k}": m for k, m in enumerate(masks)})
        tensors[s + "teacher_output"] = teacher_out.clone()
        tensors[s + "student_output"] = student_out.detach().clone()
        tensors.update({f"{s}grad.{k}": g for k, g in grads.items()})
        tensors.update({f"{s}student.{k}": v.clone() for k, v in student.state_dict().items()})
        tensors.update({f"{s}teacher.{k}": v.clone() for k, v in teacher.state_dict().items()})
        tensors[s + "center"] = loss_fn.center.clone()
        meta["steps"].append({"loss": loss.item(), "lr": lr_s[step], "wd": wd_s[step], "momentum": mom_s[step],
                              "masks": len(masks), "gradNorms": norms})
    write_safetensors(out, tensors, meta)
    print(f"{out}: {len(tensors)} tensors, losses {[s['loss'] for s in meta['steps']]}")


if __name__ == "__main__":
    main()
