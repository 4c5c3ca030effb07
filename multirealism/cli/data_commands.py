"""``multirealism data ...``: dataset preparation commands (``openimages``, ``corpus``).

The parsers need only torch-free names; the preparers (webdataset, torch) are imported by the run
functions, so ``--help`` and argument errors answer without loading torch.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from multirealism.data.corpus import CORPORA
from multirealism.data.openimages_source import DEFAULT_SOURCE_URL, SPLITS


def add_parser(subparsers: Any) -> None:
    """Register ``data`` and its ``openimages`` subcommand on the top-level CLI."""
    data = subparsers.add_parser("data", help="prepare training data", description="Prepare training data.")
    commands = data.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")
    oi = commands.add_parser(
        "openimages",
        help="download OpenImages into webdataset shards (local or s3://), resumable",
        description="Download OpenImages from the public CVDF bucket (unsigned requests), keep images whose "
        "shorter side is at least --min-size, and write the original JPEG bytes into webdataset .tar shards "
        "under --out (a folder or s3://bucket/prefix). A re-run resumes from OUT/manifest.json.",
    )
    oi.add_argument("--out", required=True, help="output folder or s3://bucket/prefix")
    oi.add_argument("--max-images", type=int, required=True, help="images to store in total (over all runs)")
    oi.add_argument("--split", choices=SPLITS, default="train")
    ids = oi.add_mutually_exclusive_group()
    ids.add_argument("--ids-file", help="image-ID CSV (ImageID column): local path or s3:// URL")
    ids.add_argument("--ids-url", help="image-ID CSV URL (default: the official list of the split)")
    oi.add_argument("--source-url", default=DEFAULT_SOURCE_URL, help="image bucket: s3://bucket or http(s)://host/path")
    oi.add_argument("--source-endpoint-url", help="S3 endpoint of the source bucket (default: AWS_ENDPOINT_URL or AWS)")
    oi.add_argument("--endpoint-url", help="S3 endpoint of an s3:// --out (default: AWS_ENDPOINT_URL or AWS)")
    oi.add_argument("--min-size", type=int, default=256, help="minimum shorter side in pixels (default 256)")
    oi.add_argument("--shard-size", type=int, default=500, help="images per shard (default 500)")
    oi.add_argument("--workers", type=int, default=16, help="parallel downloads (default 16)")
    oi.set_defaults(func=run_openimages)
    corpus = commands.add_parser(
        "corpus",
        help="build the openly licensed photo corpus from Debian wallpaper packages, with a manifest",
        description="Extract the photographs of Debian's wallpaper packages (pinned versions, listed in "
        "multirealism/data/corpus.py), downscale them (Lanczos) to --long-side and write PNGs plus manifest.json "
        "(package, version, suite, file, licence, sizes, sha256) to --out. Edje backgrounds need edje_decc "
        "(Debian package libedje-bin).",
    )
    corpus.add_argument("--out", required=True, help="output folder")
    corpus.add_argument("--from-debs", help="folder with the .deb files, searched recursively "
                        "(default: apt-get download into a temporary folder)")
    corpus.add_argument("--mirror", help="Debian archive to download from, like http://HOST/debian "
                        "(default: the one in this machine's apt sources)")
    corpus.add_argument("--long-side", type=int, default=1280, help="long side of the output images (default 1280)")
    corpus.add_argument("--corpus", choices=CORPORA, default=CORPORA[-1],
                        help="corpus version: v1 = the 35 photographs the small preset's warm-up trained on, v2 = all listed (default v2)")
    corpus.set_defaults(func=run_corpus)


def run_corpus(args: argparse.Namespace) -> int:
    from multirealism.data.corpus import build_corpus

    entries = build_corpus(args.out, debs=args.from_debs, long_side=args.long_side, corpus=args.corpus,
                           mirror=args.mirror)
    print(f"{args.out}: {len(entries)} images and manifest.json")
    return 0


def run_openimages(args: argparse.Namespace) -> int:
    from multirealism.data.openimages import prepare_openimages

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    summary = prepare_openimages(
        out=args.out,
        max_images=args.max_images,
        split=args.split,
        ids_file=args.ids_file,
        ids_url=args.ids_url,
        source_url=args.source_url,
        source_endpoint_url=args.source_endpoint_url,
        storage_options={"endpoint_url": args.endpoint_url} if args.endpoint_url else None,
        min_size=args.min_size,
        shard_size=args.shard_size,
        workers=args.workers,
    )
    rejected = ", ".join(f"{n} {reason}" for reason, n in sorted(summary.rejected.items())) or "none"
    print(
        f"{args.out}: wrote {summary.shards_written} shards / {summary.images_written} images this run; "
        f"{summary.shards_total} shards / {summary.images_total} images in total; "
        f"skipped {summary.skipped_done} already done; rejected {rejected}; {summary.failed} failed downloads"
    )
    return 1 if summary.failed else 0
