"""benchmarks/forecast_headroom.py: each row repairs exactly its kind of forecast error."""
from __future__ import annotations

import numpy as np

from benchmarks.forecast_headroom import grown, headroom_rows, place, relabelled, shrunk


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
    inputs = np.repeat(last[:, None], 11, axis=1)
    rows = headroom_rows(forecast, inputs, inputs, truth)
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


def test_relabelling_takes_the_true_class_under_most_of_an_objects_input_pixels():
    inputs = np.zeros((3, 20, 20), np.uint8)
    true_inputs = np.zeros_like(inputs)
    for t in range(3):
        square(inputs[t], 4, 2, 2), square(true_inputs[t], 12, 2, 2)     # the U-Net says 4, the truth 12 ...
        square(inputs[t], 8, 10, 10), square(true_inputs[t], 8, 10, 10)   # ... right about 8
    inputs[0, 2:5, 2:8] = 20                                             # and, once, half of 12 is a 20
    square(inputs[1], 30, 14, 2, size=3)                                 # a speck on the background
    forecast = np.zeros((20, 20), np.uint8)
    square(forecast, 4, 3, 3), square(forecast, 8, 12, 12), square(forecast, 20, 0, 14), square(forecast, 30, 14, 0)
    out = relabelled(forecast, inputs, true_inputs)
    assert (out[forecast == 4] == 12).all() and (out[forecast == 20] == 12).all()   # a fragment joins its object
    assert np.array_equal(out == 8, forecast == 8) and (out[forecast == 30] == 0).all()
    assert np.array_equal(out == 0, (forecast == 0) | (forecast == 30))


def test_grown_and_shrunk_change_each_object_by_one_pixel():
    forecast = np.zeros((12, 12), np.uint8)
    square(forecast, 3, 2, 2, size=4), square(forecast, 7, 0, 8, size=3)     # 7 touches the top border
    big, small = grown(forecast), shrunk(forecast)
    assert (big == 3).sum() == 16 + 4 * 4 and (small == 3).sum() == 4
    assert np.array_equal(np.argwhere(small == 3).min(0), [3, 3])
    assert (big == 7).sum() == 9 + 3 + 2 * 3 and (small == 7).sum() == 2      # the border is not an edge
    assert np.array_equal(big[forecast > 0], forecast[forecast > 0])
