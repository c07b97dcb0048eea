"""Dayton scale on one machine: every stage of the pipeline on N synthetic pairs in Dayton's published layout.

Usage: PYTHONPATH=. python bench/scale.py [--pairs 10000] [--steps 200] [--eval-images 500] [--workdir DIR]

Writes N pairs as Dayton publishes them (datasets.md): ``<id>.x<x>.y<y>.a<a>.streetview.jpg`` beside
``….overhead.jpg``, 354×354 JPEGs (quality 90: the published quality is not documented), ids in the grammar of the
official split lists (22 characters of ``[A-Za-z0-9_-]``, some starting with ``-``), split 55,000 : 21,048 by our
own lists in the published one-name-a-line format; the images are smooth random fields with noise, so that they
compress like photographs rather than like flat colour. Then, in a workspace copy of this project, each stage's
real code as its own process — ``download`` (the local archive), ``prepare``, ``split``, ``fetch_inception``
(offline trunk), ``reference``, ``segmenter`` (not applicable: Dayton has no label maps), ``--steps`` training steps
(the library's ``train`` on the first ``steps × batch`` train pairs of the real store: an epoch of 44,000 pairs does
not fit a bench) and ``evaluate``. For each: wall time, pairs/s, the peak resident and anonymous memory of the
process tree (sampled every 0.1 s), the disk of the workspace (+ archive), and the same extrapolated linearly to
76,048 pairs.
Prints a Markdown table (docs/benchmarks.md keeps it with the machine named).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import string
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import psutil
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DAYTON_PAIRS = 76_048
TRAIN_SHARE = 55_000 / DAYTON_PAIRS
SIDE_PX, JPEG_QUALITY = 354, 90
ID_ALPHABET = string.ascii_letters + string.digits + "_-"
TRAIN_SCRIPT = """
import sys
import numpy as np
from pix2pix.data.store import PairsView, open_pairs
from pix2pix.training.config import train_config_from_params
from pix2pix.training.loop import train
from stages.common import load_params
params = load_params()
pairs = open_pairs("data/splits/train.npy")
count = int(sys.argv[1]) * params["batch_size"]
subset = PairsView(pairs.store, pairs.rows[:count])
cfg = train_config_from_params(params, tuple(pairs.shape[2:4]), mask_input=False)
train(cfg, subset, "models")
"""


def dayton_name(rng: np.random.Generator) -> str:
    """A name in the grammar of the official lists, e.g. ``-0AbC….x317.y-454.a64.``."""
    letters = "".join(rng.choice(list(ID_ALPHABET), 22))
    x, y, a = rng.integers(-1500, 1500, 3)
    return f"{letters}.x{x}.y{y}.a{a}."


def photo_like(rng: np.random.Generator) -> bytes:
    """A 354² JPEG of a smooth random field plus noise (entropy of a photograph, not of noise or flat colour)."""
    coarse = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((SIDE_PX, SIDE_PX), Image.Resampling.BICUBIC), dtype=np.int16)
    noisy = np.clip(smooth + rng.normal(0, 12, smooth.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noisy).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def write_dayton(root: Path, count: int, seed: int = 0) -> tuple[Path, Path, Path]:
    """``dayton.zip`` with ``count`` raw pairs, and train/test lists of their names (the published format)."""
    rng = np.random.default_rng(seed)
    names = [dayton_name(rng) for _ in range(count)]
    archive = root / "dayton.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as bundle:  # JPEGs do not deflate
        for name in names:
            bundle.writestr(f"dayton/{name}streetview.jpg", photo_like(rng))
            bundle.writestr(f"dayton/{name}overhead.jpg", photo_like(rng))
    cut = round(count * TRAIN_SHARE)
    lists = []
    for split, chosen in (("train", names[:cut]), ("test", names[cut:])):
        path = root / f"{split}_split.txt"
        path.write_text("".join(f"{name}jpg\n" for name in chosen))
        lists.append(path)
    return archive, lists[0], lists[1]


def make_workspace(root: Path, archive: Path, train_list: Path, test_list: Path, eval_images: int) -> Path:
    """A copy of the project's tracked files with params for Dayton at 256 px and the paper's widths."""
    listing = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, check=True, capture_output=True).stdout.decode()
    for name in filter(None, listing.split("\0")):
        if (REPO / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params.update(dataset="dayton", image_size=256, batch_size=1, epochs=1)
    params["model"].update(ngf=64, ndf=64)
    params["train"].update(snapshot_untrained=False, flip=False)
    params["eval"].update(num_images=eval_images, inception="trunk")
    params["mlflow"]["enabled"] = False
    params["data"]["dayton"].update(
        source=str(archive), size=None, sha256=None, git_blob_sha1=None, train_list=train_list.as_uri(),
        train_list_git_blob_sha1=None, test_list=test_list.as_uri(), test_list_git_blob_sha1=None,
    )
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


def anonymous_bytes(process: psutil.Process) -> int:
    """Anonymous (heap, stack, private) memory of ``process`` from ``/proc/<pid>/smaps_rollup``, in bytes.

    Unlike RSS it leaves out file-backed pages, such as those of the memory-mapped pairs store, which the kernel
    writes back and evicts on its own: it is the memory a stage holds, the number that must not grow with N.
    """
    rollup = Path(f"/proc/{process.pid}/smaps_rollup")
    for line in rollup.read_text().splitlines():
        if line.startswith("Anonymous:"):
            return int(line.split()[1]) * 1024
    raise SystemExit(f"{rollup} has no 'Anonymous:' line: this kernel cannot report anonymous memory (Linux >= 4.14)")


def run_measured(command: list[str], cwd: Path) -> tuple[float, int, int]:
    """Run ``command``; return its wall time (s) and the peak summed RSS and anonymous memory of its process tree."""
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    watched, peak_rss, peak_anonymous = psutil.Process(process.pid), 0, 0
    while process.poll() is None:
        try:
            tree = [p for p in (watched, *watched.children(recursive=True)) if p.is_running()]
            peak_rss = max(peak_rss, sum(p.memory_info().rss for p in tree))
            peak_anonymous = max(peak_anonymous, sum(anonymous_bytes(p) for p in tree))
        except (psutil.NoSuchProcess, FileNotFoundError, ProcessLookupError):
            pass
        time.sleep(0.1)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{process.stderr.read()[-3000:]}")
    return seconds, peak_rss, peak_anonymous


def disk_bytes(folder: Path) -> int:
    """Bytes the files under ``folder`` occupy on disk (allocated blocks; hard links counted once)."""
    seen, total = set(), 0
    for path in folder.rglob("*"):
        info = path.lstat()
        if path.is_file() and (info.st_dev, info.st_ino) not in seen:
            seen.add((info.st_dev, info.st_ino))
            total += info.st_blocks * 512
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=200, help="training steps at batch 1")
    parser.add_argument("--eval-images", type=int, default=500)
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder, deleted after")
    args = parser.parse_args()
    base = args.workdir or Path(tempfile.mkdtemp(prefix="pix2pix-scale-"))
    base.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    archive, train_list, test_list = write_dayton(base, args.pairs)
    print(f"wrote {args.pairs} Dayton pairs ({archive.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - started:.0f} s",
          file=sys.stderr)
    workspace = make_workspace(base / "workspace", archive, train_list, test_list, args.eval_images)
    script = base / "train_steps.py"
    script.write_text(TRAIN_SCRIPT)
    python = sys.executable
    stages = [
        ("download", [python, "-m", "stages.download"], args.pairs),
        ("prepare", [python, "-m", "stages.prepare"], args.pairs),
        ("split", [python, "-m", "stages.split"], args.pairs),
        ("fetch_inception", [python, "-m", "stages.fetch_inception"], None),
        ("reference", [python, "-m", "stages.reference"], args.eval_images),
        ("segmenter", [python, "-m", "stages.segmenter"], None),
        (f"train ({args.steps} steps)", [python, str(script), str(args.steps)], args.steps),
        ("evaluate", [python, "-m", "stages.evaluate"], args.eval_images),
    ]
    scale = DAYTON_PAIRS / args.pairs
    print(f"| stage | wall s | items/s | peak RSS GB | peak anonymous GB | disk after GB (workspace + archive) | "
          f"wall s at {DAYTON_PAIRS:,} | disk GB at {DAYTON_PAIRS:,} |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, command, items in stages:
        seconds, peak_rss, peak_anonymous = run_measured(command, workspace)
        data_bytes = disk_bytes(workspace / "data")
        per_pair = data_bytes + archive.stat().st_size  # grows with N
        fixed = disk_bytes(workspace) - data_bytes  # models/, code: the same at any N
        grows = name in ("download", "prepare", "split")  # per-pair work; the others do a fixed amount here
        rate = f"{items / seconds:.1f}" if items else ""
        print(f"| {name} | {seconds:.1f} | {rate} | {peak_rss / 1e9:.2f} | {peak_anonymous / 1e9:.2f} | "
              f"{(per_pair + fixed) / 1e9:.2f} | "
              f"{seconds * scale if grows else seconds:.0f} | {(per_pair * scale + fixed) / 1e9:.1f} |", flush=True)
    store = workspace / "data" / "prepared" / "pairs.npy"
    print(f"\narchive {archive.stat().st_size / 1e9:.2f} GB, data/raw {disk_bytes(workspace / 'data' / 'raw') / 1e9:.2f} GB, "
          f"pairs store {store.stat().st_size / 1e9:.2f} GB; machine: {platform_name()}")
    if args.workdir is None:
        shutil.rmtree(base, ignore_errors=True)


def platform_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {psutil.cpu_count()} CPUs"
    except OSError:
        pass
    return f"{psutil.cpu_count()} CPUs"


if __name__ == "__main__":
    main()
