#!/usr/bin/python3
"""The peer of scripts/bench_fmnist_cpu.sh: the same smallcnn, recipe and JPEGs in PyTorch
on the CPU (torchvision ImageFolder + DataLoader, AdamW, per-iteration cosine, label
smoothing 0.1, horizontal flip, batch 128, 2 epochs). Prints per-epoch val top-1 and
seconds. usage: /usr/bin/python3 scripts/bench_fmnist_torch.py DATA THREADS WORKERS"""
import math, sys, time
import torch, torch.nn as nn
import torchvision.transforms as T
from torchvision.datasets import ImageFolder

sys.path.insert(0, "tests/fixtures")
src = open("tests/fixtures/make_model_fixtures.py").read()
ns = {}
exec(src.split("torch.manual_seed(11)")[0].replace("sys.argv[1]", "''"), ns)
data, threads, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
torch.manual_seed(0)
norm = T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
rgb = lambda im: im.convert("RGB")
train = ImageFolder(data + "/train", T.Compose([rgb, T.RandomHorizontalFlip(), T.ToTensor(), norm]))
val = ImageFolder(data + "/val", T.Compose([rgb, T.ToTensor(), norm]))
tl = torch.utils.data.DataLoader(train, 128, shuffle=True, drop_last=True, num_workers=workers)
vl = torch.utils.data.DataLoader(val, 128, num_workers=workers)
model = ns["smallcnn"](3, len(train.classes))
for m in model.modules():
    if isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
opt = torch.optim.AdamW(model.parameters(), lr=0.003, weight_decay=0.05)
steps = 2 * len(tl)
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (1 + math.cos(math.pi * s / steps)) / 2)
loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
t0 = time.perf_counter()
for epoch in range(2):
    model.train()
    for x, y in tl:
        opt.zero_grad()
        loss_fn(ns["forward"](model, x), y).backward()
        opt.step()
        sched.step()
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in vl:
            correct += (ns["forward"](model, x).argmax(1) == y).sum().item()
    print(f"pytorch epoch {epoch}: val top-1 {100.0 * correct / len(val):.2f}% ({time.perf_counter() - t0:.1f} s so far)", flush=True)
