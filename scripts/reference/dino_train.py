"""The training pieces of the official DINO (main_dino.py and utils.py), written out in PyTorch and
numpy to behave exactly as the official code does: the loss and its centre, the per-iteration
schedules, AdamW's two parameter groups, per-tensor gradient clipping, freezing the last layer and
the teacher EMA.

Single process: where the official code all-reduces (the centre), the world size is 1 unless a
process group has been initialised. Import it from a script that has scripts/ on sys.path:

    from reference.dino_train import DINOLoss, cosine_scheduler, ...
"""
import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F


def teacher_temp_schedule(warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs, nepochs):
    """One teacher temperature per epoch: a linear warm-up (both ends included), then constant."""
    warmup = np.linspace(warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs)
    return np.concatenate((warmup, np.ones(nepochs - warmup_teacher_temp_epochs) * teacher_temp))


class DINOLoss(nn.Module):
    """Cross-entropy between the centred, sharpened teacher distribution of each global crop and the
    student distribution of every other crop, averaged over the 2 * ncrops - 2 pairs."""

    def __init__(self, out_dim, ncrops, warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs,
                 nepochs, student_temp=0.1, center_momentum=0.9):
        super().__init__()
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.ncrops = ncrops
        self.register_buffer("center", torch.zeros(1, out_dim))
        self.teacher_temp_schedule = teacher_temp_schedule(
            warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs, nepochs)

    def forward(self, student_output, teacher_output, epoch):
        """student_output: (ncrops * B, out_dim), crop-major; teacher_output: (2 * B, out_dim)."""
        student_chunks = (student_output / self.student_temp).chunk(self.ncrops)
        temp = self.teacher_temp_schedule[epoch]
        teacher_chunks = F.softmax((teacher_output - self.center) / temp, dim=-1).detach().chunk(2)
        total, terms = 0, 0
        for iq, q in enumerate(teacher_chunks):
            for v, s in enumerate(student_chunks):
                if v == iq:
                    continue  # the same view seen by both networks
                total = total + torch.sum(-q * F.log_softmax(s, dim=-1), dim=-1).mean()
                terms += 1
        total = total / terms
        self.update_center(teacher_output)
        return total

    @torch.no_grad()
    def update_center(self, teacher_output):
        """EMA of the raw teacher logits' batch mean (over every process's rows)."""
        batch_center = torch.sum(teacher_output, dim=0, keepdim=True)
        world = 1
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(batch_center)
            world = dist.get_world_size()
        batch_center = batch_center / (len(teacher_output) * world)
        self.center = self.center * self.center_momentum + batch_center * (1 - self.center_momentum)


def teacher_entropy(teacher_output, center, temp):
    """Mean entropy (nats) of the teacher's distributions over its rows (a diagnostic, not official)."""
    logits = (teacher_output - center) / temp
    return -(F.softmax(logits, dim=-1) * F.log_softmax(logits, dim=-1)).sum(dim=-1).mean()


def cosine_scheduler(base_value, final_value, epochs, niter_per_ep, warmup_epochs=0, start_warmup_value=0):
    """One value per iteration: linear warm-up from start_warmup_value to base_value (both included),
    then a half cosine from base_value towards final_value that stops one step short of it."""
    warmup_iters = warmup_epochs * niter_per_ep
    warmup = np.array([])
    if warmup_epochs > 0:
        warmup = np.linspace(start_warmup_value, base_value, warmup_iters)
    iters = np.arange(epochs * niter_per_ep - warmup_iters)
    cosine = final_value + 0.5 * (base_value - final_value) * (1 + np.cos(np.pi * iters / len(iters)))
    schedule = np.concatenate((warmup, cosine))
    assert len(schedule) == epochs * niter_per_ep
    return schedule


def get_params_groups(model):
    """Biases and 1-D parameters are not weight-decayed; frozen parameters are left out."""
    regularized, not_regularized = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if name.endswith(".bias") or len(param.shape) == 1:
            not_regularized.append(param)
        else:
            regularized.append(param)
    return [{"params": regularized}, {"params": not_regularized, "weight_decay": 0.0}]


def set_schedules(optimizer, lr, wd):
    """Every iteration: every group gets the lr, only the first (regularised) one the weight decay."""
    for i, group in enumerate(optimizer.param_groups):
        group["lr"] = lr
        if i == 0:
            group["weight_decay"] = wd


def clip_gradients(model, clip):
    """Per-tensor clipping: each gradient is scaled by clip / (norm + 1e-6) when that is below 1.
    Returns the norms before clipping, in named_parameters() order."""
    norms = []
    for _, p in model.named_parameters():
        if p.grad is None:
            continue
        norm = p.grad.detach().norm(2)
        norms.append(norm.item())
        coef = clip / (norm + 1e-6)
        if coef < 1:
            p.grad.detach().mul_(coef)
    return norms


def cancel_gradients_last_layer(epoch, model, freeze_last_layer):
    """During the first freeze_last_layer epochs the last layer gets no gradient at all (None), so AdamW
    neither updates nor decays it."""
    if epoch >= freeze_last_layer:
        return
    for name, p in model.named_parameters():
        if "last_layer" in name:
            p.grad = None


@torch.no_grad()
def ema_update(student, teacher, momentum):
    """teacher = m * teacher + (1 - m) * student over zip(parameters()): frozen parameters included,
    buffers not."""
    for ps, pt in zip(student.parameters(), teacher.parameters()):
        pt.mul_(momentum).add_((1 - momentum) * ps.detach())
