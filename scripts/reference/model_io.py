"""The official model on both sides of a .pth file, for test/io/model-pth.test.ts.

    python3 scripts/reference/model_io.py make DIR     writes DIR/backbone.pth (a released-weights-style
        teacher backbone state dict), DIR/full.pth (an official training checkpoint: student with
        'module.' keys, teacher, optimizer, epoch, args, dino_loss) and DIR/reference.safetensors
        (the input images, the teacher backbone's CLS features, the student's and teacher's head outputs)
    python3 scripts/reference/model_io.py check DIR FILE.pth
        loads FILE.pth strictly (weights_only=True) into the official backbone and writes its CLS
        features for the same images to DIR/check.safetensors
"""
import argparse
import os
import sys

import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from reference.dino_model import DINOHead, MultiCropWrapper, VisionTransformer  # noqa: E402
from reference.dino_step import write_safetensors  # noqa: E402
from reference.dino_train import DINOLoss, get_params_groups  # noqa: E402

CONFIG = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2)
HEAD = dict(out_dim=24, hidden_dim=48, bottleneck_dim=16)


def backbone():
    return VisionTransformer(**CONFIG).eval()


def wrapper():
    return MultiCropWrapper(backbone(), DINOHead(CONFIG["embed_dim"], HEAD["out_dim"], hidden_dim=HEAD["hidden_dim"],
                                                 bottleneck_dim=HEAD["bottleneck_dim"])).eval()


def make(out):
    torch.manual_seed(0)
    student, teacher = wrapper(), wrapper()
    images = torch.randn(2, 3, 32, 32)
    # a step, so that the optimizer has state and student and teacher differ
    optimizer = torch.optim.AdamW(get_params_groups(student), lr=1e-3)
    student(images).sum().backward()
    optimizer.step()
    loss = DINOLoss(HEAD["out_dim"], 2, 0.04, 0.04, 0, 10)
    loss.center += torch.randn(1, HEAD["out_dim"])
    args = argparse.Namespace(arch="custom", patch_size=8, out_dim=HEAD["out_dim"], lr=0.0005)
    torch.save({"student": {"module." + k: v for k, v in student.state_dict().items()}, "teacher": teacher.state_dict(),
                "optimizer": optimizer.state_dict(), "epoch": 3, "args": args, "dino_loss": loss.state_dict()},
               os.path.join(out, "full.pth"))
    torch.save(teacher.backbone.state_dict(), os.path.join(out, "backbone.pth"))
    with torch.no_grad():
        write_safetensors(os.path.join(out, "reference.safetensors"), {
            "images": images,
            "teacher_features": teacher.backbone(images),
            "teacher_output": teacher(images),
            "student_output": student(images),
        }, {"config": CONFIG, "head": HEAD})


def check(out, path):
    model = backbone()
    model.load_state_dict(torch.load(path, weights_only=True), strict=True)
    images = load_file(os.path.join(out, "reference.safetensors"))["images"]
    with torch.no_grad():
        write_safetensors(os.path.join(out, "check.safetensors"), {"features": model(images)}, {})


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2])
    else:
        check(sys.argv[2], sys.argv[3])
