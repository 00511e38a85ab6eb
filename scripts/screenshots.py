"""Screenshots of refcfa-gui for the docs, taken by the app itself (``refcfa-gui --screenshot``).

Run it in a real X server so the window looks as a person sees it:

    ../shared/tools/with-xvfb .venv/bin/python scripts/screenshots.py [--checkpoint CKPT]

It uses the demo dataset ``data/synthetic`` (generated when missing) and fills a cache under
``output/gui_screenshots/cache`` through :func:`refcfa.api.stream_fields`. The network is
``--checkpoint``, else the newest checkpoint under ``output/``, else a randomly initialised
network of the demo config (the fields then show an untrained network — the script says so).

Writes ``docs/gui_main.png``, ``docs/gui_timeline.png``, ``docs/gui_dark.png`` and
``docs/gui_bad_root.png``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "data" / "synthetic"
WORK = REPO / "output" / "gui_screenshots"
DOCS = REPO / "docs"
CATEGORY = "source_texture"


def random_checkpoint(out_dir: Path) -> Path:
    """A checkpoint of the demo config's network, randomly initialised (seed 0)."""
    from refcfa.config import load_config
    from refcfa.engine.checkpoint import save_initial_checkpoint

    cfg = load_config(REPO / "resources" / "configs" / "experiments" / "synthetic" / "demo.yaml")
    return save_initial_checkpoint(cfg, out_dir, in_channels=3, seed=0)


def fill_cache(checkpoint: Path, cache: Path, samples) -> None:
    from refcfa import api

    for sample in samples:
        *_, last = api.stream_fields(checkpoint, None, sample.path, cache, sample=sample)
        print(f"cached {sample.image_id} (K={last.K}, {last.device})")


def mask_centre(sample) -> tuple[int, int]:
    import numpy as np

    from refcfa.data import read_mask

    ys, xs = np.nonzero(read_mask(sample.mask_path))
    i = int(np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2))  # a mask pixel near the centroid
    return int(ys[i]), int(xs[i])


def shoot(name: str, args: list[str], env: dict) -> Path:
    out = DOCS / name
    exe = Path(sys.executable).with_name("refcfa-gui")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "refcfa_gui.app"]
    cmd += ["--screenshot", str(out), "--settings", str(WORK / f"{out.stem}.ini"), *args]
    (WORK / f"{out.stem}.ini").unlink(missing_ok=True)  # a fresh layout each time
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    print(proc.stdout.strip())
    if proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)
        raise SystemExit(f"screenshot {name} failed (exit {proc.returncode})")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", help="score network (default: newest under output/, else random init)")
    p.add_argument("--size", default="1600x1000")
    args = p.parse_args(argv)

    from refcfa import api
    from refcfa.data import make_samples, make_synthetic

    if not (DEMO / CATEGORY).is_dir():
        make_synthetic(DEMO)
    WORK.mkdir(parents=True, exist_ok=True)
    checkpoint = Path(args.checkpoint) if args.checkpoint else api.find_checkpoint(REPO / "output")
    if checkpoint is None or WORK in checkpoint.parents:
        checkpoint = random_checkpoint(WORK / "random_init")
        print(f"no trained checkpoint found: using a randomly initialised network ({checkpoint})")
    cache = WORK / "cache"
    samples = make_samples(DEMO, "mvtec", CATEGORY)
    normals = [s for s in samples if s.split == "test" and s.label == 0][:4]
    defects = []
    for s in samples:  # one image of each defect type
        if s.label == 1 and s.mask_path and s.defect not in {d.defect for d in defects}:
            defects.append(s)
    defects = defects[:3]
    fill_cache(checkpoint, cache, normals + defects)

    env = dict(os.environ, REFCFA_GUI_THEME="light")
    common = [
        "--open",
        str(DEMO),
        "--cache",
        str(cache),
        "--checkpoint",
        str(checkpoint),
        "--size",
        args.size,
    ]
    defect = defects[0]
    y, x = mask_centre(defect)
    image = f"{CATEGORY}:{defect.image_id}"
    K = api.list_cached(cache)[0].K
    shoot("gui_main.png", [*common, "--image", image, "--step", str(max(1, K // 2))], env)
    shoot(
        "gui_timeline.png",
        [
            *common,
            "--image",
            image,
            "--step",
            str(K),
            "--overlay",
            "E",
            "--overlay",
            "contour",
            "--probe",
            f"{y},{x}",
        ],
        env,
    )
    shoot(
        "gui_dark.png",
        [
            *common,
            "--image",
            f"{CATEGORY}:{defects[1].image_id}",
            "--step",
            "3",
            "--overlay",
            "NS",
            "--overlay",
            "contour",
            "--probe",
            f"{y},{x}",
        ],
        dict(env, REFCFA_GUI_THEME="dark"),
    )
    notes = WORK / "not_a_dataset"
    (notes / "misc").mkdir(parents=True, exist_ok=True)
    (notes / "misc" / "readme.txt").write_text("no images here\n")
    shoot("gui_bad_root.png", ["--open", str(notes), "--cache", str(cache), "--size", args.size], env)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
