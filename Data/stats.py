"""Statistics of labelled videos, read from `mask.npy` only, to compare generated data with real data.

    python Data/stats.py --root_dir /tmp/gen --split train --compare ../shared/real_sample
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from common.errors import UserInputError, run_cli  # noqa: E402
from Data.layout import NUM_CLASSES, NUM_FRAMES, NUM_INPUT_FRAMES, list_videos  # noqa: E402

log = logging.getLogger(__name__)


def video_stats(mask: np.ndarray) -> dict[str, object]:
    """Per-video measurements of one (22, H, W) mask; `split_stats` aggregates them."""
    t_count = mask.shape[0]
    ids_per_frame = [set(np.unique(m).tolist()) - {0} for m in mask]
    all_ids = set().union(*ids_per_frame)
    areas, sizes = [], []
    centroids: dict[int, list[tuple[float, float]]] = {i: [] for i in all_ids}
    for t in range(t_count):
        for i in ids_per_frame[t]:
            ys, xs = np.nonzero(mask[t] == i)
            areas.append(len(ys))
            sizes.append(max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1))
            centroids[i].append((float(ys.mean()), float(xs.mean())))
    # Travel of an object = largest distance between two of its centroids; partly visible
    # objects at the border shift their centroid too, as they do in the real data.
    travel = 0.0
    for pts in centroids.values():
        p = np.array(pts)
        if len(p) > 1:
            d = np.sqrt(((p[:, None] - p[None]) ** 2).sum(-1))
            travel = max(travel, float(d.max()))
    seen_early = set().union(*ids_per_frame[:NUM_INPUT_FRAMES])
    return {
        "fg": float((mask > 0).mean()),
        "objects": len(all_ids),
        "visible": [len(s) for s in ids_per_frame],
        "areas": areas,
        "sizes": sizes,
        "travel": travel,
        "enters": any(i not in ids_per_frame[0] for i in all_ids),
        "unseen21": bool(ids_per_frame[-1] - seen_early) if t_count == NUM_FRAMES else False,
    }


def _load_mask(path: Path) -> np.ndarray:
    try:
        mask = np.load(path)
    except (OSError, ValueError) as err:
        raise UserInputError(f"{path}: cannot read mask ({err})") from None
    if mask.ndim != 3 or mask.shape[0] != NUM_FRAMES or mask.max(initial=0) >= NUM_CLASSES:
        raise UserInputError(f"{path}: expected a ({NUM_FRAMES}, H, W) mask with ids 0..48, "
                             f"got shape {mask.shape}")
    return mask


def split_stats(split_dir: Path, limit: int | None = None) -> dict[str, str]:
    """Rows of the statistics table (name -> formatted value) for the labelled videos of a split."""
    if not split_dir.is_dir():
        raise UserInputError(f"{split_dir}: no such split folder")
    videos = [p for _, p in list_videos(split_dir) if (p / "mask.npy").is_file()]
    if limit:
        videos = videos[:limit]
    if not videos:
        raise UserInputError(f"{split_dir}: no video with a mask.npy")
    per = [video_stats(_load_mask(p / "mask.npy"))
           for p in tqdm(videos, desc=split_dir.name, disable=len(videos) < 50)]
    fg = np.array([v["fg"] for v in per])
    objs = np.array([v["objects"] for v in per])
    vis = np.concatenate([v["visible"] for v in per])
    areas = np.concatenate([v["areas"] for v in per]) if any(v["areas"] for v in per) else np.zeros(1)
    sizes = np.concatenate([v["sizes"] for v in per]) if any(v["sizes"] for v in per) else np.zeros(1)
    travel = np.array([v["travel"] for v in per])

    def spread(a: np.ndarray, fmt: str = "{:.0f}") -> str:
        q = np.percentile(a, [0, 5, 50, 95, 100])
        return " / ".join(fmt.format(x) for x in q)

    return {
        "videos": f"{len(per)}",
        "background % (min/mean/max)": f"{100 - 100 * fg.max():.1f} / {100 - 100 * fg.mean():.1f} / "
                                       f"{100 - 100 * fg.min():.1f}",
        "objects per video (min/med/max)": f"{objs.min()} / {np.median(objs):.0f} / {objs.max()}",
        "visible per frame (min/med/max)": f"{vis.min()} / {np.median(vis):.0f} / {vis.max()}",
        "object area px (min/p5/med/p95/max)": spread(areas),
        "object size px (min/p5/med/p95/max)": spread(sizes),
        "max travel px per video (min/p5/med/p95/max)": spread(travel),
        "videos with an entering object": f"{100 * np.mean([v['enters'] for v in per]):.0f}%",
        "videos with a frame-21 object unseen in 0..10": f"{100 * np.mean([v['unseen21'] for v in per]):.0f}%",
    }


def format_table(columns: dict[str, dict[str, str]]) -> str:
    """Markdown table with one row per statistic and one column per data root."""
    names = list(columns)
    rows = list(next(iter(columns.values())))
    head = "| statistic | " + " | ".join(names) + " |"
    sep = "|---|" + "---|" * len(names)
    body = [f"| {r} | " + " | ".join(columns[n][r] for n in names) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root_dir", type=Path, default=Path(__file__).resolve().parent,
                        help="data root holding <split>/video_<id>/mask.npy (default: the repo's Data/)")
    parser.add_argument("--split", default="train", help="labelled split to measure (default: train)")
    parser.add_argument("--compare", type=Path, default=None,
                        help="a second data root (e.g. ../shared/real_sample) shown in a second column")
    parser.add_argument("--compare_split", default=None,
                        help="split of --compare to measure (default: train, where the real samples live)")
    parser.add_argument("--limit", type=int, default=None, help="measure at most this many videos per root")
    args = parser.parse_args(argv)
    columns = {str(args.root_dir): split_stats(args.root_dir / args.split, args.limit)}
    if args.compare is not None:
        columns[str(args.compare)] = split_stats(args.compare / (args.compare_split or "train"), args.limit)
    print(format_table(columns))


if __name__ == "__main__":
    run_cli(main)
