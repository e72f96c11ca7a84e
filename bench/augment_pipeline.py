"""CNN training throughput (images/s) on the CPU: on-device batch augmentation against a torchvision DataLoader.

Both pipelines train the same CNN (model=cnn) with the same optimizer (Adam lr 1e-3) on the same 32x32 RGB uint8
images with the same augmentation (random crop after 4-pixel padding + horizontal flip):

- ours: images held as one float tensor, batches sliced from it (TensorBatches), augmented as whole batches on the
  device (lepton_research.data.augment.RandomCropFlip);
- torchvision: a Dataset of PIL images with transforms.Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(),
  ToTensor()]) behind a shuffling DataLoader (num_workers as given; 0 = in this process, the fair case on one core).

The images are random uint8 arrays of CIFAR-10's shape (no CIFAR-10 on the development machine; throughput does not
depend on the pixels). Rounds alternate between the pipelines; the median of each is reported. The data-only rows
time the same pipelines without the model (batching + augmentation alone).

    python bench/augment_pipeline.py [--images 5000] [--steps 30] [--rounds 3] [--workers 0] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lepton_research.data.augment import RandomCropFlip  # noqa: E402
from lepton_research.data.stream import TensorBatches, TensorData  # noqa: E402
from lepton_research.models.cnn import CNN  # noqa: E402


class PILImages(torch.utils.data.Dataset):
    def __init__(self, images: np.ndarray, labels: np.ndarray, transform) -> None:
        from PIL import Image

        self.images = [Image.fromarray(im.transpose(1, 2, 0)) for im in images]
        self.labels, self.transform = labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.transform(self.images[i]), int(self.labels[i])


def ours(images, labels, batch, steps, model, opt, with_model=True) -> float:
    data = TensorData(torch.from_numpy(images).float().div_(255), torch.from_numpy(labels), torch.zeros(len(labels)))
    augment = RandomCropFlip(padding=4, flip_p=0.5)
    batches = TensorBatches(data, batch, steps, 1, torch.Generator().manual_seed(0))
    start = time.perf_counter()
    for x, y, _ in batches:
        x = augment(x)
        if with_model:
            step(model, opt, x, y)
    return steps * batch / (time.perf_counter() - start)


def torchvision_loader(dataset, batch, steps, workers, model, opt, with_model=True) -> float:
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True)
    start, done = time.perf_counter(), 0
    while done < steps:
        for x, y in loader:
            if with_model:
                step(model, opt, x, y)
            done += 1
            if done == steps:
                break
    return steps * batch / (time.perf_counter() - start)


def step(model, opt, x, y) -> None:
    opt.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    opt.step()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30, help="training steps per round and pipeline")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers of the torchvision pipeline")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from torchvision import transforms

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(args.images, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, size=args.images).astype(np.int64)
    tv = PILImages(
        images,
        labels,
        transforms.Compose(
            [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(), transforms.ToTensor()]
        ),
    )
    torch.manual_seed(0)
    model = CNN(in_shape=(3, 32, 32), out_features=10)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rates: dict[str, list[float]] = {"ours": [], "torchvision": [], "ours data only": [], "torchvision data only": []}
    for _ in range(args.rounds):
        rates["ours"].append(ours(images, labels, args.batch, args.steps, model, opt))
        rates["torchvision"].append(torchvision_loader(tv, args.batch, args.steps, args.workers, model, opt))
        rates["ours data only"].append(ours(images, labels, args.batch, 4 * args.steps, None, None, False))
        rates["torchvision data only"].append(
            torchvision_loader(tv, args.batch, 4 * args.steps, args.workers, None, None, False)
        )
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(
        f"CNN (model=cnn) on 32x32x3, batch {args.batch}, {args.threads} thread(s), DataLoader workers {args.workers}"
    )
    for k, v in med.items():
        print(f"  {k:<24} {v:10.0f} images/s   (rounds: {', '.join(f'{r:.0f}' for r in rates[k])})")
    print(f"  training speed-up ours / torchvision: {med['ours'] / med['torchvision']:.2f}x")
    print(f"  data-pipeline speed-up ours / torchvision: {med['ours data only'] / med['torchvision data only']:.2f}x")


if __name__ == "__main__":
    main()
