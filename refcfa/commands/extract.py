"""`refcfa extract`: fill the REF trajectory cache for a domain's images under one checkpoint.

Under `torchrun --nproc_per_node=N -m refcfa extract …` each rank takes the shard
`images[rank::N]` and computes what of it is not cached yet; the cache's atomic entries and locked index let
the ranks write side by side.
"""

from __future__ import annotations

import argparse


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "--config-file", dest="config", required=True, help="experiment YAML")
    parser.add_argument("--checkpoint", required=True, help="score-network checkpoint (refcfa train output)")
    parser.add_argument("--domain", choices=["source", "target"], default=None,
                        help="which domain's images (default: the config's stage)")
    parser.add_argument("--split", choices=["train", "test", "all"], default="all", help="which split")
    parser.add_argument("--images", nargs="+", default=None, metavar="ID",
                        help="only these image ids (e.g. test/crack/000)")
    parser.add_argument("--cache", default=None, help="cache folder (default: cache.dir or <output_dir>/cache)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides")
    parser.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import os

    from tqdm.auto import tqdm

    from refcfa.config import load_config
    from refcfa.data import make_samples
    from refcfa.errors import DatasetError
    from refcfa.field.cache import TrajectoryCache
    from refcfa.field.extract import FieldExtractor, items_from_samples

    overrides = list(args.set) + ([f"cache.dir={args.cache}"] if args.cache else [])
    cfg = load_config(args.config, overrides)
    which = args.domain or cfg.stage
    dom = cfg.domain(which)
    samples = make_samples(dom.root, dom.format, dom.category)
    if args.split != "all":
        samples = [s for s in samples if s.split == args.split]
    if args.images:
        wanted = set(args.images)
        unknown = wanted - {s.image_id for s in samples}
        if unknown:
            raise DatasetError(
                f"--images: {', '.join(sorted(unknown))} not in {dom.category} ({args.split} split); ids look "
                f"like {samples[0].image_id if samples else 'test/<defect>/<stem>'}"
            )
        samples = [s for s in samples if s.image_id in wanted]
    cache = TrajectoryCache(cfg.cache_dir(), budget_bytes=int(cfg.cache.budget_gb * 2**30))
    ex = FieldExtractor(args.checkpoint, cfg, cache, args.device or cfg.device)
    items = items_from_samples(samples, cfg.data.image_size, ex.channels, {"role": f"{which}_{args.split}"})
    rank = int(os.environ.get("RANK", 0))
    bar = tqdm(total=len(items), desc=f"REF {dom.category}" + (f" [rank {rank}]" if "RANK" in os.environ else ""),
               disable=args.quiet)
    n_computed = 0
    for prog in ex.extract(items, shard=True):
        bar.total = prog.total
        bar.n = prog.done
        bar.refresh()
        n_computed += int(prog.computed)
    bar.close()
    print(f"{n_computed} computed, {len(items) - n_computed if 'RANK' not in os.environ else 'rest'} "
          f"already cached or on other ranks; cache: {cache.root}")
    return 0
