#!/usr/bin/python3
"""The peer of trainer/bench_step.c: torchvision's model, one SGD training step on the CPU
at the same batch, size and thread count. usage: bench_train_cpu.py MODEL BATCH SIZE STEPS THREADS"""
import sys, time
import torch, torchvision
arch, batch, size, steps, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(threads)
model = torchvision.models.__dict__[arch](num_classes=1000)
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
x = torch.randn(batch, 3, size, size)
y = torch.arange(batch) * 37 % 1000
loss_fn = torch.nn.CrossEntropyLoss()
model.train()
for s in range(-1, steps):
    if s == 0:
        t0 = time.perf_counter()
    opt.zero_grad()
    loss_fn(model(x), y).backward()
    opt.step()
dt = (time.perf_counter() - t0) / steps
print(f"pytorch {torch.__version__} {arch} batch {batch} {size}x{size}: {dt * 1e3:.1f} ms/step, {batch / dt:.1f} images/s")
