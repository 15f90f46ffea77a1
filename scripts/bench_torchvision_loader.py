#!/usr/bin/python3
"""The peer of scripts/bench_loader.sh: torchvision's ImageFolder + DataLoader (Pillow,
RandomResizedCrop 224 + horizontal flip, uint8 tensors, batch 256) over DIR/train,
timed over whole epochs after one warm-up batch. Prints one line: workers images/s.
usage: /usr/bin/python3 scripts/bench_torchvision_loader.py DIR WORKERS [EPOCHS]"""
import sys, time
import torch
import torchvision.transforms as T
from torchvision.datasets import ImageFolder

def main():
    root, workers = sys.argv[1], int(sys.argv[2])
    epochs = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    torch.set_num_threads(1)
    tf = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.PILToTensor()])
    ds = ImageFolder(root + "/train", transform=tf)
    dl = torch.utils.data.DataLoader(ds, batch_size=256, shuffle=True, num_workers=workers,
                                     persistent_workers=workers > 0)
    n, t0 = 0, None
    for _ in range(epochs):
        for x, y in dl:
            if t0 is None:  # the first batch pays for starting workers
                t0 = time.perf_counter()
                continue
            n += x.shape[0]
    print(f"{workers} {n / (time.perf_counter() - t0):.1f}")

if __name__ == "__main__":
    main()
