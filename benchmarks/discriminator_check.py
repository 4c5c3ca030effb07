"""Does a discriminator learn? Train it alone to tell real crops from the shipped model's decodes.

A discriminator that stays at chance (loss 2 ln 2 = 1.386, accuracy 0.5) gives the generator no
signal; docs/discriminator-diagnosis.md explains why HiFiC's layout did. This script decodes
scikit-image's and matplotlib's photographs with the shipped model at one β (default 0; quality
levels 0-3), trains a registered discriminator alone on 128² crops of four photographs (the same ŷ for the
real and the decoded crop) and prints loss and patch accuracy on its last 50 batches, on 64 fixed crops
of those photographs and on 64 crops of two photographs it never sees. Nothing is downloaded.

    python benchmarks/discriminator_check.py                                   # hific, 150 steps (~6 min, 1 core)
    python benchmarks/discriminator_check.py --disc projected --lr 4e-4
    python benchmarks/discriminator_check.py --disc patchgan_ms --args '{"num_scales": 2}'
    python benchmarks/discriminator_check.py --disc projected --lr 4e-4 --beta 5.12   # the realism branch's output
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch

from multirealism import MultiRealismCodec, discriminators
from multirealism.training.losses import discriminator_accuracy, discriminator_loss

TRAIN = ("astronaut", "chelsea", "rocket", "motorcycle")
HELD_OUT = ("coffee", "grace_hopper")
Crops = Tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def photographs() -> Dict[str, np.ndarray]:
    """The photographs, as (H, W, 3) uint8 arrays, from the scikit-image and matplotlib wheels."""
    import matplotlib.cbook as cbook
    from PIL import Image
    from skimage import data

    photos = {"astronaut": data.astronaut(), "chelsea": data.chelsea(), "rocket": data.rocket(),
              "motorcycle": data.stereo_motorcycle()[0], "coffee": data.coffee()}
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        photos["grace_hopper"] = np.asarray(Image.open(f).convert("RGB"))
    return photos


@torch.no_grad()
def decode_all(
    levels: Sequence[int], beta: float
) -> Dict[str, Tuple[torch.Tensor, List[Tuple[torch.Tensor, torch.Tensor]]]]:
    """Each photograph (cropped to a multiple of 16) with its decode at ``beta`` and ŷ at each level."""
    codec = MultiRealismCodec.pretrained().eval()
    out = {}
    for name, img in photographs().items():
        h, w = img.shape[0] // 16 * 16, img.shape[1] // 16 * 16
        x = torch.from_numpy(np.ascontiguousarray(img[:h, :w])).permute(2, 0, 1)[None].float() / 255
        decodes = []
        for q in levels:
            o = codec(x, beta, quality=q)
            decodes.append((o.x_hat[0], o.y_hat[0]))
        out[name] = (x[0], decodes)
    return out


def crops(decoded, names: Sequence[str], count: int, g: torch.Generator, size: int = 128) -> Crops:
    """``count`` random crops on the latent grid: real, decoded and the shared ŷ."""
    xs, fakes, ys = [], [], []
    for _ in range(count):
        x, decodes = decoded[names[int(torch.randint(len(names), (1,), generator=g))]]
        x_hat, y_hat = decodes[int(torch.randint(len(decodes), (1,), generator=g))]
        i = 16 * int(torch.randint((x.shape[1] - size) // 16 + 1, (1,), generator=g))
        j = 16 * int(torch.randint((x.shape[2] - size) // 16 + 1, (1,), generator=g))
        xs.append(x[:, i:i + size, j:j + size])
        fakes.append(x_hat[:, i:i + size, j:j + size])
        ys.append(y_hat[:, i // 16:(i + size) // 16, j // 16:(j + size) // 16])
    return torch.stack(xs), torch.stack(fakes), torch.stack(ys)


@torch.no_grad()
def score(disc: torch.nn.Module, batch: Crops, beta: float) -> Tuple[float, float]:
    """Loss and patch accuracy on fixed crops, in eval mode."""
    x, fake, y = batch
    disc.eval()
    real_logits, fake_logits = disc(x, y, beta), disc(fake, y, beta)
    disc.train()
    return float(discriminator_loss(real_logits, fake_logits)), float(discriminator_accuracy(real_logits, fake_logits))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--disc", default="hific", help="discriminator registry name")
    parser.add_argument("--args", default="{}", help="its constructor arguments as JSON (latent_channels is set)")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--betas", type=float, nargs=2, default=(0.5, 0.999), help="Adam's (β1, β2)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--levels", type=int, nargs="+", default=[0, 1, 2, 3], help="quality levels decoded")
    parser.add_argument("--beta", type=float, default=0.0, help="the realism weight the photographs are decoded at")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    decoded = decode_all(args.levels, args.beta)
    torch.manual_seed(args.seed)
    latent_channels = decoded[TRAIN[0]][1][0][1].shape[0]
    disc = discriminators.build(args.disc, latent_channels=latent_channels, **json.loads(args.args)).train()
    trainable = [p for p in disc.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=args.lr, betas=tuple(args.betas))
    fixed = torch.Generator().manual_seed(1234)
    held_out, seen = crops(decoded, HELD_OUT, 64, fixed), crops(decoded, TRAIN, 64, fixed)
    g = torch.Generator().manual_seed(args.seed)
    history: List[Tuple[float, float]] = []
    start = time.perf_counter()
    print(f"{args.disc} {args.args}: {sum(p.numel() for p in trainable)} trainable parameters, lr {args.lr}, "
          f"Adam {tuple(args.betas)}, batch {args.batch}, levels {args.levels}, β {args.beta}, "
          f"{torch.get_num_threads()} threads")
    for step in range(1, args.steps + 1):
        x, fake, y = crops(decoded, TRAIN, args.batch, g)
        real_logits, fake_logits = disc(x, y, args.beta), disc(fake, y, args.beta)
        loss = discriminator_loss(real_logits, fake_logits)
        history.append((float(loss.detach()), float(discriminator_accuracy(real_logits, fake_logits))))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % args.eval_every == 0 or step == args.steps:
            recent = np.asarray(history[-50:])
            seen_loss, seen_acc = score(disc, seen, args.beta)
            held_loss, held_acc = score(disc, held_out, args.beta)
            print(f"step {step:4d}  train loss {recent[:, 0].mean():.3f} acc {recent[:, 1].mean():.3f}  "
                  f"seen {seen_loss:.3f} / {seen_acc:.3f}  held-out {held_loss:.3f} / {held_acc:.3f}  "
                  f"{time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
