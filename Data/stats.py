"""Statistics of labelled videos, to compare generated data with real data: motion and layout
from `mask.npy`, and with `--images` the fine detail of the frames (noise, texture, outline
softness) measured inside and outside the masks. With `--dynamics`, the motion statistics of
`Data/dynamics.py` (speeds, speed ratios, entering speeds, collisions, stops) instead; with
`--saved_seg_model_dir` too, of masks a U-Net segments from the frames, so unlabelled splits work.

    python Data/stats.py --root_dir /tmp/gen --split train --compare ../shared/real_sample
    python Data/stats.py --root_dir /tmp/gen --compare ../shared/real_sample --images
    python Data/stats.py --dynamics --root_dir /tmp/gen --compare ../shared/real_sample
    python Data/stats.py --dynamics --root_dir ../shared/real_sample --split unlabeled \
        --saved_seg_model_dir Unets/checkpoints
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from common.cli import ArgumentParser, device_name, positive_int
from common.errors import UserInputError, run_cli
from common.progress import tqdm
from Data import dynamics
from Data.layout import (LABELED_SPLITS, NUM_CLASSES, NUM_FRAMES, NUM_INPUT_FRAMES, SPLITS, class_attributes,
                         frame_name, list_videos)

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
    if (mask.ndim != 3 or mask.shape[0] != NUM_FRAMES or not np.issubdtype(mask.dtype, np.integer)
            or mask.min(initial=0) < 0 or mask.max(initial=0) >= NUM_CLASSES):
        raise UserInputError(f"{path}: expected a ({NUM_FRAMES}, H, W) integer mask with ids 0..48, "
                             f"got shape {mask.shape} {mask.dtype}")
    return mask


def _labelled_videos(split_dir: Path, limit: int | None = None) -> list[Path]:
    """Folders of the split's videos that have a mask.npy; a clear error when there are none."""
    if not split_dir.parent.is_dir():
        raise UserInputError(f"{split_dir.parent}: data root not found")
    if not split_dir.is_dir():
        raise UserInputError(f"{split_dir}: no such split folder")
    videos = [p for _, p in list_videos(split_dir) if (p / "mask.npy").is_file()]
    if limit:
        videos = videos[:limit]
    if not videos:
        raise UserInputError(f"{split_dir}: no video with a mask.npy")
    return videos


def split_stats(split_dir: Path, limit: int | None = None) -> dict[str, str]:
    """Rows of the statistics table (name -> formatted value) for the labelled videos of a split."""
    videos = _labelled_videos(split_dir, limit)
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


def _laplacian(gray: np.ndarray) -> np.ndarray:
    """|pixel - mean of its 4 neighbours| of (N, H, W) images, on the (H-2, W-2) interior."""
    return np.abs(gray[:, 1:-1, 1:-1] - 0.25 * (gray[:, :-2, 1:-1] + gray[:, 2:, 1:-1]
                                                + gray[:, 1:-1, :-2] + gray[:, 1:-1, 2:]))


def image_detail(frames: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    """Fine detail of frames (N, H, W, 3) uint8 with their masks (N, H, W), grey levels 0..255.

    - floor noise: mean |Laplacian| on floor pixels whose 4 neighbours are floor too (white
      noise of std s gives ~0.89 s);
    - metal / rubber texture: the same inside objects of that material, away from their outline
      (noise and small highlights: path-traced renders are noisier on objects than on the floor);
    - outline contrast: mean |difference| of horizontally adjacent pixels that the mask gives to
      different classes (a sharper outline gives more; blur and anti-aliasing give less);
    - rubber left/right: mean brightness of the left third of a rubber object over its right
      third (objects fully in view with no other object in their box), i.e. where the light
      comes from.
    NaN where the frames hold no such pixel or object.
    """
    gray = frames.astype(np.float32).mean(axis=-1)
    lap = _laplacian(gray)
    c = masks[:, 1:-1, 1:-1]
    same = ((masks[:, :-2, 1:-1] == c) & (masks[:, 2:, 1:-1] == c)
            & (masks[:, 1:-1, :-2] == c) & (masks[:, 1:-1, 2:] == c))
    material = ((c.astype(np.int64) - 1) // 8) % 2              # 0 metal, 1 rubber (class id layout)
    edge = masks[:, :, 1:] != masks[:, :, :-1]
    step = np.abs(np.diff(gray, axis=2))

    def mean(a: np.ndarray, sel: np.ndarray) -> float:
        return float(a[sel].mean()) if sel.any() else float("nan")

    ratios = []
    h, w = masks.shape[1:]
    for img, m in zip(gray, masks):
        for cid in np.unique(m):
            if cid == 0 or class_attributes(int(cid))[1] != 1:       # rubber only
                continue
            ys, xs = np.nonzero(m == cid)
            y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
            box = m[y0:y1, x0:x1]
            if ys.size < 100 or y0 == 0 or x0 == 0 or y1 == h or x1 == w or ((box != cid) & (box != 0)).any():
                continue
            third = (x1 - x0) / 3
            v = img[ys, xs]
            ratios.append(v[xs < x0 + third].mean() / v[xs >= x1 - third].mean())
    return {"floor noise": mean(lap, same & (c == 0)),
            "metal texture": mean(lap, same & (c > 0) & (material == 0)),
            "rubber texture": mean(lap, same & (c > 0) & (material == 1)),
            "outline contrast": mean(step, edge),
            "rubber left/right": float(np.mean(ratios)) if ratios else float("nan")}


def split_image_stats(split_dir: Path, limit: int = 40, frames: Sequence[int] = (0, 7, 14, 21)) -> dict[str, str]:
    """Rows of `image_detail` for the first `limit` labelled videos of a split (`frames` of each)."""
    from Data.reading import read_png          # imports torch: only when images are measured
    videos = [p for _, p in list_videos(split_dir) if (p / "mask.npy").is_file()][:limit]
    if not videos:
        raise UserInputError(f"{split_dir}: no video with a mask.npy")
    imgs, masks = [], []
    for p in tqdm(videos, desc=f"{split_dir.name} frames", disable=len(videos) < 50):
        mask = _load_mask(p / "mask.npy")
        for t in frames:
            imgs.append(read_png(p / frame_name(t)))
            masks.append(mask[t])
    detail = image_detail(np.stack(imgs), np.stack(masks))
    return {(k if "/" in k else f"{k} (grey levels)"): f"{v:.2f}" for k, v in detail.items()}


def labelled_masks(split_dir: Path, limit: int | None = None) -> Iterator[np.ndarray]:
    """The mask.npy of each labelled video of a split, checked, in video-id order."""
    videos = _labelled_videos(split_dir, limit)
    for p in tqdm(videos, desc=split_dir.name, disable=len(videos) < 50):
        yield _load_mask(p / "mask.npy")


def segmented_masks(root: Path, split: str, model_dir: Path, device: str = "auto", limit: int | None = None,
                    batch_size: int = 22) -> Iterator[np.ndarray]:
    """Masks (T, H, W) a U-Net checkpoint segments from every frame of each video of a split.

    Any split works, `unlabeled` included; frames come through `Data.reading.SplitReader`
    (its cache when fresh), so bad files give the reader's one-line errors.
    """
    from common.runtime import pick_device          # torch: only when a segmenter is used
    from Data.reading import SplitReader, preprocess_frames
    from models import load_segmenter
    from Unets.segmentation import segment

    if not root.is_dir():
        raise UserInputError(f"{root}: data root not found")
    model = load_segmenter(model_dir, pick_device(device))
    reader = SplitReader(root, split)
    count = min(len(reader), limit) if limit else len(reader)
    for i in tqdm(range(count), desc=f"segmenting {split}", unit="video"):
        frames = preprocess_frames(reader.frames(i, range(reader.num_frames)))
        yield segment(model, frames, batch_size).numpy()


def split_dynamics(masks: Iterator[np.ndarray]) -> dict[str, str]:
    """Rows of the dynamics table (`Data.dynamics.table_rows`) of a stream of (T, H, W) masks."""
    return dynamics.table_rows(dynamics.dynamics_summary(masks))


def format_table(columns: dict[str, dict[str, str]]) -> str:
    """Markdown table with one row per statistic and one column per data root."""
    names = list(columns)
    rows = list(next(iter(columns.values())))
    head = "| statistic | " + " | ".join(names) + " |"
    sep = "|---|" + "---|" * len(names)
    body = [f"| {r} | " + " | ".join(columns[n][r] for n in names) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def dynamics_columns(args: argparse.Namespace, splits: dict[str, Path]) -> dict[str, dict[str, str]]:
    """One dynamics column per root; the first from the segmenter when `--saved_seg_model_dir` is set."""
    columns = {}
    for k, (name, path) in enumerate(splits.items()):
        if k == 0 and args.saved_seg_model_dir is not None:
            masks = segmented_masks(args.root_dir, args.split, args.saved_seg_model_dir, args.device,
                                    args.limit, args.seg_batch)
            name = f"{name} ({args.split}, segmented)"
        else:
            masks = labelled_masks(path, args.limit)
        columns[name] = split_dynamics(masks)
    return columns


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root_dir", type=Path, default=Path(__file__).resolve().parent,
                        help="data root holding <split>/video_<id>/mask.npy (default: the repo's Data/)")
    parser.add_argument("--split", default="train", choices=SPLITS,
                        help="split to measure: a labelled one, or any with --saved_seg_model_dir (default: train)")
    parser.add_argument("--compare", type=Path, default=None,
                        help="a second data root (e.g. ../shared/real_sample) shown in a second column")
    parser.add_argument("--compare_split", default=None, choices=LABELED_SPLITS,
                        help="split of --compare to measure (default: train, where the real samples live)")
    parser.add_argument("--limit", type=positive_int, default=None, help="measure at most this many videos per root")
    parser.add_argument("--images", action="store_true",
                        help="also measure the frames' fine detail (noise, texture, outline contrast) "
                             "on frames 0/7/14/21 of at most --limit (default 40) videos")
    parser.add_argument("--dynamics", action="store_true",
                        help="print the motion table of Data/dynamics.py (speeds, speed ratios, entering "
                             "speeds, collisions, stops) instead of the layout table")
    parser.add_argument("--saved_seg_model_dir", type=Path, default=None,
                        help="with --dynamics: a U-Net checkpoint (file, or folder holding best.pt) that "
                             "segments the frames of --root_dir's --split, read instead of mask.npy (so "
                             "unlabeled works); the --compare column still reads mask.npy")
    parser.add_argument("--device", type=device_name, default="auto",
                        help="device of the segmenter: auto (CUDA when present), cpu, cuda, ... (default: auto)")
    parser.add_argument("--seg_batch", type=positive_int, default=22,
                        help="frames per segmenter forward pass (default: 22, one video)")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.dynamics and args.images:
        parser.error("--images measures the layout table's frames; run it without --dynamics")
    if args.saved_seg_model_dir is not None and not args.dynamics:
        parser.error("--saved_seg_model_dir only feeds the --dynamics table")
    splits = {str(args.root_dir): args.root_dir / args.split}
    if args.compare is not None:
        compare_split = args.compare_split or "train"
        name = str(args.compare)
        if name in splits:      # the same root twice (e.g. train vs val) needs two column names
            name = f"{name} ({compare_split})"
        splits[name] = args.compare / compare_split
    if args.dynamics:
        print(format_table(dynamics_columns(args, splits)))
        return
    columns = {name: split_stats(path, args.limit) for name, path in splits.items()}
    if args.images:
        for name, path in splits.items():
            columns[name].update(split_image_stats(path, args.limit or 40))
    print(format_table(columns))


if __name__ == "__main__":
    run_cli(main)
