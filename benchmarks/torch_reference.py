"""The AutoICE challenge baseline in PyTorch, timed the way launch/benchmark.py times ours.

Not part of the package and not a dependency: run it in a separate environment that has torch
(`python -m venv torch-env && torch-env/bin/pip install torch numpy`), on the same machine:

  torch-env/bin/python benchmarks/torch_reference.py --batch-size 8 --size 256 --scene 1024

and on a GPU, in the setting an accelerator comparison wants (bf16 autocast, NHWC memory layout):

  python benchmarks/torch_reference.py --device cuda --amp bf16 --channels-last --batch-size 64

Network as in the official baseline (ai4arctic-format.md, peers): U-Net [16, 32, 64, 64], (3x3 conv
no bias, BatchNorm, ReLU) x 2, max-pool, bilinear x2 (align corners) + skip concat, 24 inputs, 1x1
heads 12/7/8, Adam lr 1e-4, summed cross-entropy (ignore 255), fp32 unless --amp bf16
(torch.autocast: convs / matmuls in bf16, parameters and optimizer state fp32, as
model.dtype = "bfloat16" does in ours). On CUDA every timed region ends with
torch.cuda.synchronize(), since kernels run asynchronously.
"""

import argparse
import contextlib
import json
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


def double_conv(cin, cout):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class UNet(nn.Module):
    def __init__(self, cin=24, filters=(16, 32, 64, 64), heads=(12, 7, 8)):
        super().__init__()
        self.input_block = double_conv(cin, filters[0])
        self.down = nn.ModuleList(double_conv(a, b) for a, b in zip(filters[:-1], filters[1:], strict=True))
        self.bridge = double_conv(filters[-1], filters[-1])
        ups, below = [], filters[-1]
        for skip in reversed(filters):
            ups.append(double_conv(below + skip, skip))
            below = skip
        self.up = nn.ModuleList(ups)
        self.heads = nn.ModuleList(nn.Conv2d(filters[0], n, 1) for n in heads)

    def forward(self, x):
        x = self.input_block(x)
        skips = [x]
        for block in self.down:
            x = block(F.max_pool2d(x, 2))
            skips.append(x)
        x = self.bridge(F.max_pool2d(x, 2))
        for block, skip in zip(self.up, reversed(skips), strict=True):
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
            dh, dw = skip.shape[2] - x.shape[2], skip.shape[3] - x.shape[3]
            x = F.pad(x, [dw // 2, dw - dw // 2, dh // 2, dh - dh // 2])
            x = block(torch.cat([x, skip], 1))
        return [h(x) for h in self.heads]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--scene", type=int, default=1024)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--amp", choices=("none", "bf16"), default="none", help="bf16: torch.autocast compute")
    p.add_argument("--channels-last", action="store_true", help="NHWC memory layout (model and inputs)")
    a = p.parse_args()
    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: this torch has no usable CUDA device")
    memory_format = torch.channels_last if a.channels_last else torch.contiguous_format

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def autocast():
        if a.amp == "bf16":
            return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    torch.manual_seed(0)
    model = UNet().to(device=device, memory_format=memory_format)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.randn(a.batch_size, 24, a.size, a.size, device=device).contiguous(memory_format=memory_format)
    ys = [torch.randint(0, n, (a.batch_size, a.size, a.size), device=device) for n in (11, 6, 7)]
    times = []
    for i in range(a.steps + 2):
        sync()
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with autocast():
            out = model(x)
            # cross-entropy of bf16 logits: autocast computes it in fp32
            loss = sum(F.cross_entropy(o, y, ignore_index=255) for o, y in zip(out, ys, strict=True))
        loss.backward()
        opt.step()
        sync()
        if i >= 2:
            times.append(time.perf_counter() - t)
    step = float(np.median(times))
    model.eval()
    scene = torch.randn(1, 24, a.scene, a.scene, device=device).contiguous(memory_format=memory_format)
    inf = []
    with torch.no_grad(), autocast():
        for i in range(4):
            sync()
            t = time.perf_counter()
            model(scene)
            sync()
            if i:
                inf.append(time.perf_counter() - t)
    s = float(np.median(inf))
    print(json.dumps({"torch": {
        "version": torch.__version__, "threads": torch.get_num_threads(),
        "device": str(device), "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "amp": a.amp, "channels_last": a.channels_last, "batch_size": a.batch_size, "size": a.size,
        "params": sum(p.numel() for p in model.parameters()),
        "train_images_per_s": a.batch_size / step, "train_step_ms": step * 1e3,
        "inference_mpix_per_s": a.scene * a.scene / s / 1e6, "scene": a.scene}}, indent=1))


if __name__ == "__main__":
    main()
