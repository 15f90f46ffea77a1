#!/usr/bin/env python3
"""PyTorch's side of scripts/bench_train.sh: training images/s of a torchvision model with
synthetic data already on the GPU, SGD (momentum 0.9), the same loop as bench_train_gpu.
Modes: fp32 (NCHW, PyTorch's defaults: TF32 convolutions allowed), fp32-strict (NCHW, TF32
off: stoker's --precision fp32), fp32-cl (channels_last),
bf16 (autocast + channels_last), compile (bf16 + torch.compile, inductor default).
Memory: peak_mib is torch.cuda.max_memory_allocated (tensors only); reserved_mib the
caching allocator's peak; above_context_mib the device memory the process took above its
bare CUDA context (cudaMemGetInfo after the steps against right after the context was
made), which counts cuDNN/cuBLAS handles, workspaces and loaded kernels as stoker's
bench_train_gpu's above_context_mib does: the like-for-like figure.
usage: bench_train_gpu.py MODEL MODE [--batch B] [--size S] [--steps N] [--warmup W]"""
import argparse, time
import torch, torchvision

ap = argparse.ArgumentParser()
ap.add_argument("model"); ap.add_argument("mode", choices=["fp32", "fp32-strict", "fp32-cl", "bf16", "compile"])
ap.add_argument("--batch", type=int, default=256); ap.add_argument("--size", type=int, default=224)
ap.add_argument("--steps", type=int, default=30); ap.add_argument("--warmup", type=int, default=5)
a = ap.parse_args()
torch.backends.cudnn.benchmark = True
if a.mode == "fp32-strict":
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
dev = torch.device("cuda")
torch.cuda.init()
torch.cuda.synchronize()
free0 = torch.cuda.mem_get_info()[0]  # the bare context (no allocation yet)
model = torchvision.models.__dict__[a.model](num_classes=1000).to(dev)
cl = a.mode not in ("fp32", "fp32-strict")
if cl:
    model = model.to(memory_format=torch.channels_last)
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
x = torch.randn(a.batch, 3, a.size, a.size, device=dev)
if cl:
    x = x.contiguous(memory_format=torch.channels_last)
y = torch.randint(0, 1000, (a.batch,), device=dev)
lossf = torch.nn.CrossEntropyLoss()
t0 = time.time()
fwd = torch.compile(model) if a.mode == "compile" else model
def step():
    opt.zero_grad(set_to_none=True)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=a.mode in ("bf16", "compile")):
        loss = lossf(fwd(x), y)
    loss.backward()
    opt.step()
    return loss
for _ in range(a.warmup):
    step()
torch.cuda.synchronize()
setup = time.time() - t0
torch.cuda.reset_peak_memory_stats()
t1 = time.time()
for _ in range(a.steps):
    loss = step()
torch.cuda.synchronize()
dt = time.time() - t1
above = (free0 - torch.cuda.mem_get_info()[0]) / 2**20
print(f"torch {a.model} batch={a.batch} size={a.size} mode={a.mode} setup_s={setup:.2f} "
      f"images_per_s={a.steps * a.batch / dt:.1f} step_ms={dt / a.steps * 1e3:.2f} "
      f"loss={loss.item():.4f} peak_mib={torch.cuda.max_memory_allocated() / 2**20:.0f} "
      f"reserved_mib={torch.cuda.max_memory_reserved() / 2**20:.0f} above_context_mib={above:.0f}")
