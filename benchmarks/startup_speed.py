"""Start-up cost of the command line and the package, against ``import torch``, in one run.

Each row runs a fresh interpreter several times and reports the median wall time and the peak
resident memory. ``--root`` measures another checkout (e.g. an older commit in a temporary worktree)
with the same interpreter, so before/after figures come from the same machine state.

    python benchmarks/startup_speed.py [--root DIR] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List


def bitstream(root: Path, folder: Path) -> Path:
    """A small .mrc written by the tiny preset of ``root``'s package (for the ``info`` row)."""
    path = folder / "x.mrc"
    code = (
        "import torch\nfrom multirealism import MultiRealismCodec\nfrom multirealism.zoo import tiny_config\n"
        "torch.manual_seed(0)\ncodec = MultiRealismCodec.from_config(tiny_config()).eval()\n"
        f"open({str(path)!r}, 'wb').write(codec.compress(torch.rand(3, 64, 64)))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=_env(root), cwd=root, capture_output=True)
    return path


def _env(root: Path) -> Dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(root)}


def measure(argv: List[str], root: Path, repeats: int) -> "tuple[float, float]":
    """Median seconds and the largest peak RSS in MiB (``/usr/bin/time -f %M``; nan where it is missing)
    over ``repeats`` fresh processes."""
    timer = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    times, peaks = [], []
    for _ in range(repeats):
        command = [timer, "-f", "MAXRSS %M", *argv] if timer else argv
        start = time.perf_counter()
        result = subprocess.run(command, env=_env(root), cwd=root, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - start)
        rss = [line.split()[1] for line in result.stderr.splitlines() if line.startswith("MAXRSS ")]
        peaks.append(int(rss[-1]) / 1024 if rss else float("nan"))
    return statistics.median(times), max(peaks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    cli = "from multirealism.cli.main import main; import sys; sys.exit(main(sys.argv[1:]))"
    with tempfile.TemporaryDirectory() as tmp:
        mrc = bitstream(args.root, Path(tmp))
        rows = {
            "python -c 'import torch'": [sys.executable, "-c", "import torch"],
            "import multirealism": [sys.executable, "-c", "import multirealism"],
            "import multirealism.codec": [sys.executable, "-c", "import multirealism.codec"],
            "multirealism --help": [sys.executable, "-c", cli, "--help"],
            "multirealism compress (missing args)": [sys.executable, "-c", cli, "compress"],
            "multirealism info x.mrc": [sys.executable, "-c", cli, "info", str(mrc)],
        }
        print(f"root: {args.root}   repeats: {args.repeats}")
        print(f"{'command':40s} {'median s':>9s} {'peak MiB':>9s}")
        for name, argv in rows.items():
            seconds, peak = measure(argv, args.root, args.repeats)
            print(f"{name:40s} {seconds:9.3f} {peak:9.0f}")


if __name__ == "__main__":
    main()
