#!/usr/bin/python3
"""Writes a torchvision classification model's weights as a safetensors file stoker
reads (stoker-train --weights, stoker-predict --checkpoint): torchvision's state_dict
names, float tensors as F32, batch norms' num_batches_tracked as I64 scalars (as
trainer/ckpt.c writes them), and __metadata__ {"format": "pt", "arch": MODEL,
"num_classes": K, "normalize": "imagenet", "classes": JSON list when --classes is given}
(trainer/ckpt_meta.h).

Nothing is downloaded. --weights FILE is what torch.load reads: a state_dict, a whole
pickled model, or a dict holding one under "model" or "state_dict" (torchvision's
references/classification checkpoints); it is loaded into the torchvision model with
strict=True, so a file of another architecture fails here, naming the keys. Without
--weights the model keeps torchvision's random initialisation (for tests). The class
count is the head's (fc / the last classifier Linear) in the weights, or --num-classes.

Needs Debian's python3-torch and python3-torchvision (the /usr/bin/python3 interpreter);
the safetensors package is not needed: the format is an 8-byte header length, a JSON
header and the raw little-endian bytes, written here with struct and json.
usage: /usr/bin/python3 scripts/export_torchvision.py MODEL OUT.safetensors
           [--weights FILE] [--num-classes K] [--classes NAMES.txt (one per line)]"""
import argparse, json, os, struct, sys

import torch
import torchvision


def head_name(model):
    """The last Linear module: fc for ResNets, classifier.N for the others."""
    names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    if not names:
        sys.exit("export_torchvision.py: the model has no Linear head")
    return names[-1]


def read_weights(path):
    obj = torch.load(path, map_location="cpu")
    if isinstance(obj, torch.nn.Module):
        return obj.state_dict()
    for key in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), (dict, torch.nn.Module)):
            obj = obj[key]
            return obj.state_dict() if isinstance(obj, torch.nn.Module) else obj
    if isinstance(obj, dict):
        return obj
    sys.exit(f"export_torchvision.py: {path}: neither a state_dict nor a model")


def build(arch, args):
    if not callable(torchvision.models.__dict__.get(arch)):
        sys.exit(f"export_torchvision.py: unknown torchvision model {arch}")
    state = read_weights(args.weights) if args.weights else None
    k = args.num_classes
    if state is not None:
        head = head_name(torchvision.models.__dict__[arch]())
        if head + ".weight" not in state:
            sys.exit(f"export_torchvision.py: {args.weights} has no {head}.weight: not {arch}?")
        k_file = state[head + ".weight"].shape[0]
        if k and k != k_file:
            sys.exit(f"export_torchvision.py: {args.weights} has {k_file} classes, not {k}; export "
                     f"it as it is: stoker-train --weights replaces a head of another size")
        k = k_file
    model = torchvision.models.__dict__[arch](num_classes=k or 1000)
    if state is not None:
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as e:  # PyTorch lists every missing/unexpected key: show the start
            msg = " ".join(str(e).split())
            sys.exit(f"export_torchvision.py: {args.weights} is not torchvision's {arch}: "
                     f"{msg[:600]}{' ...' if len(msg) > 600 else ''}")
    return model, head_name(model)


def write_safetensors(path, tensors, meta):
    dtypes = {torch.float32: "F32", torch.int64: "I64"}
    header, blobs, off = {"__metadata__": meta}, [], 0
    for name, t in tensors.items():
        t = t.detach().cpu().contiguous()
        if t.is_floating_point():
            t = t.float()
        elif t.dtype != torch.int64:
            sys.exit(f"export_torchvision.py: {name} is {t.dtype}, neither float nor int64")
        raw = t.numpy().tobytes()
        header[name] = {"dtype": dtypes[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, ensure_ascii=False).encode()
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)  # tensors start 8-byte aligned, as stoker's
    tmp = path + ".partial"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return off


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model"), p.add_argument("out")
    p.add_argument("--weights"), p.add_argument("--num-classes", type=int)
    p.add_argument("--classes", help="file of class names, one per line, in label order")
    args = p.parse_args()
    model, head = build(args.model, args)
    state = model.state_dict()
    k = state[head + ".weight"].shape[0]
    meta = {"format": "pt", "arch": args.model, "num_classes": str(k), "normalize": "imagenet",
            "source": f"torchvision {torchvision.__version__}" +
                      (f" {os.path.basename(args.weights)}" if args.weights else " random init")}
    if args.classes:
        names = [l.rstrip("\n") for l in open(args.classes, encoding="utf-8") if l.strip()]
        if len(names) != k:
            sys.exit(f"export_torchvision.py: {args.classes} names {len(names)} classes, the head has {k}")
        meta["classes"] = json.dumps(names, ensure_ascii=False)
    n = write_safetensors(args.out, state, meta)
    print(f"export_torchvision.py: {args.model}, {len(state)} tensors, {k} classes, "
          f"{n / 1e6:.1f} MB -> {args.out}")


if __name__ == "__main__":
    main()
