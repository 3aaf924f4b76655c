"""benchmarks/forecast_headroom.py: each row repairs exactly its kind of forecast error."""
from __future__ import annotations

import numpy as np

from benchmarks.forecast_headroom import headroom_rows, place


def square(mask: np.ndarray, cid: int, top: int, left: int, size: int = 6) -> np.ndarray:
    mask[top:top + size, left:left + size] = cid
    return mask


def scene():
    """One video: object 5 forecast 2 px off, object 6 forecast 20 px off, a ghost of class 7,
    and object 9, seen at frame 10, that the forecast dropped."""
    truth = np.zeros((40, 60), np.uint8)
    forecast = np.zeros_like(truth)
    last = np.zeros_like(truth)
    square(truth, 5, 5, 5), square(forecast, 5, 7, 5)
    square(truth, 6, 25, 40), square(forecast, 6, 25, 20)
    square(forecast, 7, 30, 2, size=3)
    square(truth, 9, 10, 30), square(last, 9, 12, 33)
    return forecast[None], last[None], truth[None]


def test_rows_repair_only_their_kind_of_error():
    forecast, last, truth = scene()
    rows = headroom_rows(forecast, last, truth)
    assert np.array_equal(rows["physics forecast"], forecast)
    assert np.array_equal(rows["copy mask 10"], last)
    assert not (rows["ghost classes removed"] == 7).any()
    assert (rows["ghost classes removed"] == 5).sum() == 36
    near = rows["objects off by <= 4 px at true centroids"][0]
    assert np.array_equal(near == 5, truth[0] == 5) and np.array_equal(near == 6, forecast[0] == 6)
    far = rows["objects off by > 12 px at true centroids"][0]
    assert np.array_equal(far == 6, truth[0] == 6) and np.array_equal(far == 5, forecast[0] == 5)
    every = rows["every object at its true centroid"][0]
    assert np.array_equal(every == 5, truth[0] == 5) and np.array_equal(every == 6, truth[0] == 6)
    assert not (every == 9).any() and (every == 7).sum() == 9     # ghosts are not objects of the truth
    added = rows["... and dropped objects at theirs"][0]
    assert np.array_equal(added == 9, truth[0] == 9)


def test_placement_clips_to_the_view_and_paints_nearer_objects_on_top():
    truth = np.zeros((20, 20), np.uint8)
    forecast = np.zeros_like(truth)
    square(truth, 3, 16, 16), square(forecast, 3, 2, 2)          # truth half outside the view: 4x4, centroid 17.5
    out = place(forecast, np.zeros_like(truth), truth, (0.0, np.inf), False)
    assert np.array_equal(np.argwhere(out == 3).min(0), [15, 15]) and (out == 3).sum() == 25
    truth, forecast = np.zeros_like(truth), np.zeros_like(truth)
    square(truth, 5, 10, 4), square(forecast, 5, 0, 12)          # 5 moves down and left ...
    square(truth, 4, 14, 2), square(forecast, 4, 2, 2)           # ... under 4, which ends lower: nearer, on top
    out = place(forecast, np.zeros_like(truth), truth, (0.0, np.inf), False)
    assert np.array_equal(out == 4, truth == 4) and (out == 4).sum() == 36
    assert 0 < (out == 5).sum() < 36
