"""The measurements of `medssl speed`, done with PyTorch + MONAI on the same settings.
Prints one JSON object with the same keys."""
import argparse
import json
import resource
import statistics
import time

import torch
from monai.inferers import sliding_window_inference
from monai.networks.nets import SwinUNETR

p = argparse.ArgumentParser()
p.add_argument("--feature-size", type=int, default=24)
p.add_argument("--roi", type=int, default=64)
p.add_argument("--volume", default="128,128,96")
p.add_argument("--iters", type=int, default=5)
p.add_argument("--classes", type=int, default=3)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
device = torch.device(a.device)
cuda = device.type == "cuda"


def sync():
    if cuda:
        torch.cuda.synchronize(device)


def timed(f):
    f()
    sync()
    times = []
    for _ in range(a.iters):
        start = time.perf_counter()
        f()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


model = SwinUNETR(in_channels=1, out_channels=a.classes, feature_size=a.feature_size).to(device)
x = torch.randn(1, 1, a.roi, a.roi, a.roi, device=device)
model.eval()
with torch.no_grad():
    forward_ms = timed(lambda: model(x))

model.train()
opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-5)
loss_fn = torch.nn.CrossEntropyLoss()
target = (torch.arange(a.roi ** 3, device=device) % a.classes).reshape(1, a.roi, a.roi, a.roi)


def step():
    opt.zero_grad()
    loss = loss_fn(model(x), target)
    loss.backward()
    opt.step()


train_step_ms = timed(step)

model.eval()
d, h, w = (int(v) for v in a.volume.split(","))
vol = torch.rand(1, 1, d, h, w, device=device)
with torch.no_grad():
    sliding_window_ms = timed(
        lambda: sliding_window_inference(vol, (a.roi,) * 3, 1, model, overlap=0.5, mode="gaussian")
    )
print(json.dumps({
    "backend": f"pytorch-{device.type}",
    "device": a.device,
    "threads": torch.get_num_threads(),
    "feature_size": a.feature_size,
    "roi": a.roi,
    "volume": [d, h, w],
    "forward_ms": forward_ms,
    "train_step_ms": train_step_ms,
    "sliding_window_ms": sliding_window_ms,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "peak_allocated_mb": torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None,
}))
