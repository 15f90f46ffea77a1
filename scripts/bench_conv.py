#!/usr/bin/python3
"""The peer of trainer/bench_conv.c: PyTorch CPU conv2d forward and backward (input and
weight gradients) on the same resnet18 layers, float32 NCHW, batch 16.
usage: /usr/bin/python3 scripts/bench_conv.py THREADS ITERS"""
import sys, time
import torch
import torch.nn.functional as F

layers = [("conv1 3->64 7x7/2 @224", 3, 224, 64, 7, 2, 3),
          ("layer1 64->64 3x3 @56", 64, 56, 64, 3, 1, 1),
          ("layer3 256->256 3x3 @14", 256, 14, 256, 3, 1, 1)]
threads, iters = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
for name, c, hw, k, r, s, p in layers:
    x = torch.randn(16, c, hw, hw, requires_grad=True)
    w = torch.randn(k, c, r, r, requires_grad=True)
    def step():
        y = F.conv2d(x, w, stride=s, padding=p)
        t1 = time.perf_counter()
        y.backward(torch.ones_like(y))
        return t1
    step()
    fwd = bwd = 0.0
    for _ in range(iters):
        t0 = time.perf_counter()
        t1 = step()
        t2 = time.perf_counter()
        fwd += (t1 - t0) * 1e3 / iters
        bwd += (t2 - t1) * 1e3 / iters
    print(f"{name:<26} pytorch-{torch.__version__:<8} fwd {fwd:7.2f}  bwd (data+weights) {bwd:7.2f}  total {fwd + bwd:7.2f} ms")
