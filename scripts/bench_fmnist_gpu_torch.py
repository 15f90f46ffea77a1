#!/usr/bin/python3
"""The peer of scripts/bench_fmnist_gpu.sh: the same smallresnet (its PyTorch twin in
tests/fixtures/make_model_fixtures.py) on the same Fashion-MNIST JPEGs, bf16 autocast,
channels_last, AdamW with a per-iteration cosine, label smoothing 0.1, horizontal flip,
two ways: "loader" (torchvision ImageFolder + DataLoader with WORKERS workers, Pillow) and
"tensors" (the dataset decoded once into GPU tensors, flips drawn on the GPU). Prints one
line per epoch (seconds, val top-1, time since the start) and the time to 93.5%.
usage: bench_fmnist_gpu_torch.py DATA loader|tensors EPOCHS BATCH WORKERS [--device D] [--limit N]"""
import argparse, math, sys, time
import torch, torch.nn as nn
import torchvision.transforms as T
from torchvision.datasets import ImageFolder

ap = argparse.ArgumentParser()
ap.add_argument("data"); ap.add_argument("mode", choices=["loader", "tensors"])
ap.add_argument("epochs", type=int); ap.add_argument("batch", type=int); ap.add_argument("workers", type=int)
ap.add_argument("--device", default="cuda"); ap.add_argument("--limit", type=int, default=0)
a = ap.parse_args()
src = open("tests/fixtures/make_model_fixtures.py").read().split('if sys.argv[1] == "--names"')[0]
ns = {}
exec(src, ns)
dev = torch.device(a.device)
norm = T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
rgb = lambda im: im.convert("RGB")
train = ImageFolder(a.data + "/train", T.Compose([rgb, T.RandomHorizontalFlip(), T.ToTensor(), norm]))
val = ImageFolder(a.data + "/val", T.Compose([rgb, T.ToTensor(), norm]))
if a.limit:
    train.samples, val.samples = train.samples[::len(train) // a.limit], val.samples[::len(val) // a.limit]
t0 = time.perf_counter()

def to_gpu(ds):
    """Every image decoded once (no augmentation), as one tensor on the device."""
    plain = ImageFolder(ds.root, T.Compose([rgb, T.ToTensor(), norm]))
    plain.samples = ds.samples
    dl = torch.utils.data.DataLoader(plain, 1024, num_workers=a.workers)
    xs, ys = zip(*[(x, y) for x, y in dl])
    return torch.cat(xs).to(dev), torch.cat(ys).to(dev)

if a.mode == "tensors":
    tx, ty = to_gpu(train)
    vx, vy = to_gpu(val)
    steps_per_epoch = len(tx) // a.batch
else:
    tl = torch.utils.data.DataLoader(train, a.batch, shuffle=True, drop_last=True, num_workers=a.workers,
                                     pin_memory=a.device == "cuda", persistent_workers=a.workers > 0)
    vl = torch.utils.data.DataLoader(val, 1024, num_workers=a.workers, persistent_workers=a.workers > 0)
    steps_per_epoch = len(tl)
model = ns["smallresnet"](3, len(train.classes)).to(dev).to(memory_format=torch.channels_last)
opt = torch.optim.AdamW(model.parameters(), lr=0.003, weight_decay=0.05)
steps = a.epochs * steps_per_epoch
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (1 + math.cos(math.pi * s / steps)) / 2)
loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
amp = dict(device_type=dev.type, dtype=torch.bfloat16)

def batches():
    if a.mode == "loader":
        for x, y in tl:
            yield x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
        return
    perm = torch.randperm(len(tx), device=dev)
    for i in range(steps_per_epoch):
        idx = perm[i * a.batch:(i + 1) * a.batch]
        x = tx[idx]
        flip = torch.rand(len(idx), device=dev) < 0.5
        yield torch.where(flip[:, None, None, None], x.flip(3), x), ty[idx]

def evaluate():
    model.eval()
    right = n = 0
    with torch.no_grad(), torch.autocast(**amp):
        pairs = ((vx[i:i + 1024], vy[i:i + 1024]) for i in range(0, len(vx), 1024)) if a.mode == "tensors" \
            else ((x.to(dev), y.to(dev)) for x, y in vl)
        for x, y in pairs:
            right += (ns["forward"](model, x.contiguous(memory_format=torch.channels_last)).argmax(1) == y).sum().item()
            n += len(y)
    return 100.0 * right / n

reached = None
for epoch in range(a.epochs):
    te = time.perf_counter()
    model.train()
    for x, y in batches():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(**amp):
            loss = loss_fn(ns["forward"](model, x.contiguous(memory_format=torch.channels_last)), y)
        loss.backward()
        opt.step()
        sched.step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    train_s = time.perf_counter() - te
    top1 = evaluate()
    since = time.perf_counter() - t0
    if reached is None and top1 >= 93.5:
        reached = since
    print(f"torch {a.mode} epoch {epoch}: train {train_s:.2f} s, val top-1 {top1:.2f}%, {since:.1f} s since start")
print(f"torch {a.mode} epochs={a.epochs} final_top1={top1:.2f} time_to_93.5={reached if reached else -1:.1f}")
