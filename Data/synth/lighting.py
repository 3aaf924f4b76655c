"""The lighting measured on the real frames, and the shading models the renderer draws it with.

Every number here comes from `LIGHTING_FILE`, written by `tools/fit_lighting.py` (analysis by
synthesis on the real frames): rubber is shaded by a spherical-harmonic irradiance and a sheen,
metal by an environment table over the reflected direction plus the lamps' sharp highlights;
the floor's radiance is a measured table, the floor shadows' lamps are given by their angles.
`Data.synth.render` casts the rays and calls `shade`; the lighting fit reads the same models.
"""
from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

import numpy as np

from Data.layout import HEIGHT, WIDTH
from Data.synth.scene import METAL, RUBBER, Camera, SceneObject

# Every number measured on the real frames lives in this file, written by `tools/fit_lighting.py`
# (analysis by synthesis: real objects re-posed in this scene, their pixels' normals known):
# rubber's irradiance as 9 spherical-harmonic terms of the normal plus a white sheen, metal's
# reflected environment as tables over the reflected direction plus the highlights of a few round
# lamps, the floor shadows' lamps (direction, strength, penumbra blur, area spread) and contact
# darkening, how far the objects are drawn off their masks, the empty floor's radiance and the
# objects' mean colours.
LIGHTING_FILE = Path(__file__).resolve().with_name("real_lighting.json")
_FITTED = json.loads(LIGHTING_FILE.read_text())
_MATERIAL_KEYS = {METAL: "metal", RUBBER: "rubber"}

# Floor radiance of the real frames (green channel; their lights never move) at the image rows
# `rows` and at the centres of 16-pixel column bands; red and blue differ from green by a per-row
# offset (a warm near floor).
_FLOOR = _FITTED["floor"]

# Mean display colour of an object of each material and colour in the real frames, averaged over
# the object's mask (material x colour x RGB; colours as in `Data.layout.COLOURS`). Classes the
# real samples lack follow the measured ones' mapping from CLEVR's palette (rubber ~ 10 +
# 7.6*sqrt(base), metal ~ 0.8 x rubber).
TARGET_MEAN = np.array([_FITTED["colours"]["target_mean"][_MATERIAL_KEYS[m]] for m in (METAL, RUBBER)],
                       dtype=np.float32)
# Mean shading factor of each material over a visible object: dividing the target mean by it
# gives the albedo.
SHADE_MEAN = {m: float(_FITTED["colours"]["shade_mean"][key]) for m, key in _MATERIAL_KEYS.items()}
# Metal's highlights: (unit direction towards the lamp, its radius in degrees, strength in grey levels).
Highlights = list[tuple[np.ndarray, float, float]]
# How far (right, down, in pixels) the real frames draw the objects from where their masks and
# shadows put them (`fit_lighting.fit_object_shift`, on the objects' edges). U-Nets trained
# without it miss the real objects' top and left edges.
OBJECT_SHIFT = tuple(float(v) for v in _FITTED["object_shift"])


def floor_radiance(camera: Camera | None = None) -> np.ndarray:
    """(H, W, 3) float32 floor colour without objects or shadows, from the measured table."""
    camera = camera or Camera()
    h, w = camera.height_px, camera.width
    grid = np.array(_FLOOR["green"], dtype=np.float64)
    cols = np.arange(len(grid[0])) * (WIDTH / len(grid[0])) + WIDTH / len(grid[0]) / 2
    u = (np.arange(w) + 0.5) * WIDTH / w - 0.5
    v = (np.arange(h) + 0.5) * HEIGHT / h - 0.5
    by_row = np.stack([np.interp(u, cols, row) for row in grid])            # (rows, W)
    rows = _FLOOR["rows"]
    g = np.stack([np.interp(v, rows, by_row[:, j]) for j in range(w)], axis=1)
    r = g + np.interp(v, rows, _FLOOR["red_offset"])[:, None]
    b = g + np.interp(v, rows, _FLOOR["blue_offset"])[:, None]
    return np.stack([r, g, b], axis=-1).astype(np.float32)


def sh9(n: np.ndarray) -> np.ndarray:
    """(N, 9) real spherical-harmonic basis up to order 2 of unit vectors (unnormalised terms)."""
    x, y, z = n[:, 0], n[:, 1], n[:, 2]
    return np.stack([np.ones_like(x), x, y, z, x * y, y * z, x * z, x * x - y * y, 3 * z * z - 1], 1)


def sheen_basis(normals: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """(N, 5) terms of rubber's white sheen: two powers of (1 - cos view) and the reflected direction."""
    cos_v = np.clip(-np.einsum("ij,ij->i", dirs, normals), 0, 1)
    r = dirs + 2 * cos_v[:, None] * normals       # `reflect`, reusing cos_v (a per-pixel cost)
    return np.stack([(1 - cos_v) ** 5, (1 - cos_v) ** 2, r[:, 0], r[:, 1], r[:, 2]], 1)


def env_cells(r: np.ndarray, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear lookup into a (rows, cols) table over reflected directions r (N, 3).

    Rows sample the height r_z from -1 to 1, columns the azimuth (wrapping around). Returns the
    (N, 4) flat cell indices and their (N, 4) weights.
    """
    r = r.astype(np.float64)       # in float32, rows - 1 - 1e-9 rounds to the last row
    fz = np.clip((r[:, 2] + 1) / 2 * (rows - 1), 0, rows - 1 - 1e-9)
    fa = (np.arctan2(r[:, 1], r[:, 0]) + math.pi) / (2 * math.pi) * cols
    z0, a0 = np.floor(fz).astype(np.int64), np.floor(fa).astype(np.int64)
    wz, wa = fz - z0, fa - a0
    a0, a1 = a0 % cols, (a0 + 1) % cols
    cells = np.stack([z0 * cols + a0, z0 * cols + a1, (z0 + 1) * cols + a0, (z0 + 1) * cols + a1], 1)
    weights = np.stack([(1 - wz) * (1 - wa), (1 - wz) * wa, wz * (1 - wa), wz * wa], 1)
    return cells, weights


@lru_cache(maxsize=1)
def real_lighting() -> dict:
    """The fitted lighting of `LIGHTING_FILE` in the renderer's terms."""
    return parse_lighting(_FITTED)


def parse_lighting(data: dict) -> dict:
    """A lighting file's content (`LIGHTING_FILE`'s layout) in the renderer's terms."""
    metal = data["metal"]
    shadows = data["shadows"]
    return {"sh": np.array(data["rubber"]["sh"]), "sheen": np.array(data["rubber"]["sheen"]),
            "rows": metal["rows"], "cols": metal["cols"],
            "env": np.array(metal["env"]), "white": np.array(metal["white"]),
            "highlights": renderer_highlights(metal.get("highlights", []))} | renderer_shadows(shadows)


def renderer_highlights(highlights: list[dict]) -> Highlights:
    """The lighting file's metal "highlights" (lamps by angles) as (direction, radius, strength)."""
    return [(lamp_direction(h["azimuth_deg"], h["elevation_deg"]), float(h["radius_deg"]), float(h["strength"]))
            for h in highlights]


def highlight_lobe(r: np.ndarray, ldir: np.ndarray, radius_deg: float) -> np.ndarray:
    """(N,) mirror image of a round lamp `radius_deg` wide on metal, seen at reflected directions r:
    exp(-(angle / radius)^4), flat near the lamp's centre and falling off at its rim (0.37 at the
    radius, 0.13 at 1.2x). A flat disc rather than a peaked lobe because the bevels of real cubes
    catch the lamps over a range of yaws while the spots on real spheres stay small."""
    angle = np.degrees(np.arccos(np.clip(r @ ldir, -1.0, 1.0)))
    return np.exp(-((angle / radius_deg) ** 4))


def renderer_shadows(shadows: dict) -> dict:
    """The lighting file's "shadows" entry (lamps by angles) as the renderer's shadows: "lamps" as
    (direction, strength, blur, spread) and "contact"."""
    return {"lamps": [(lamp_direction(lamp["azimuth_deg"], lamp["elevation_deg"]), float(lamp["strength"]),
                       int(lamp["blur"]), float(lamp["spread_deg"])) for lamp in shadows["lamps"]],
            "contact": float(shadows["contact"])}


def lamp_direction(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """Unit vector towards a lamp: azimuth from +x (right) towards +y (away), elevation above the floor."""
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    return np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])


def lamp_angles(ldir: np.ndarray) -> tuple[float, float]:
    """(azimuth, elevation) in degrees of a unit direction towards a lamp: `lamp_direction` undone."""
    return math.degrees(math.atan2(ldir[1], ldir[0])), math.degrees(math.asin(ldir[2]))


def area_lamp_directions(ldir: np.ndarray, spread_deg: float) -> list[np.ndarray]:
    """`ldir` alone for a point lamp, else four unit directions `spread_deg` from it (up, down,
    left, right of it as seen from the floor), kept above the horizon."""
    if spread_deg <= 0:
        return [ldir]
    side = np.cross(ldir, [0.0, 0.0, 1.0])
    side /= np.linalg.norm(side)
    up = np.cross(side, ldir)
    tilt = math.tan(math.radians(spread_deg))
    out = []
    for offset in (up, -up, side, -side):
        d = ldir + tilt * offset
        d[2] = max(d[2], 0.05)
        out.append(d / np.linalg.norm(d))
    return out


def reflect(dirs: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """(N, 3) mirror directions of viewing rays `dirs` off surfaces with `normals`."""
    cos_v = np.clip(-np.einsum("ij,ij->i", dirs, normals), 0, 1)
    return dirs + 2 * cos_v[:, None] * normals


def metal_shading(r: np.ndarray, tables: dict, highlights: Highlights
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Metal's (N,) albedo factor and (N,) white term for reflected directions r: the "env" and
    "white" tables of `tables` (with their "rows" and "cols") plus the highlights' lobes."""
    cells, weights = env_cells(r, tables["rows"], tables["cols"])
    white = (weights * np.asarray(tables["white"])[cells]).sum(1) + highlight_light(r, highlights)
    return (weights * np.asarray(tables["env"])[cells]).sum(1), white


def highlight_light(r: np.ndarray, highlights: Highlights) -> np.ndarray:
    """(N,) white light of the highlights (direction, radius, strength) at reflected directions r."""
    out = np.zeros(len(r))
    for ldir, radius, strength in highlights:
        out += strength * highlight_lobe(r, ldir, radius)
    return out


def shading_terms(material: int, dirs: np.ndarray, normals: np.ndarray,
                  highlights: Highlights | None = None, light: dict | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(N,) factor on the albedo and (N,) white term added to it: colour = albedo * factor + white.

    Metal's white term holds the smooth environment table plus the lamps' sharp highlights
    (`highlights` replaces the lighting file's, e.g. `Renderer.varied_highlights`). `light`
    (`parse_lighting`'s) replaces the lighting file's, e.g. a fit not yet written.
    """
    light = light or real_lighting()
    if material == METAL:
        return metal_shading(reflect(dirs, normals), light, light["highlights"] if highlights is None else highlights)
    # The fit holds only for normals the camera sees; clamp what a far side could extrapolate to.
    irradiance = np.clip(sh9(normals) @ light["sh"], 0.2, 2.0)
    return irradiance, sheen_basis(normals, dirs) @ light["sheen"]


def shade(obj: SceneObject, dirs: np.ndarray, normals: np.ndarray,
          highlights: Highlights | None = None) -> np.ndarray:
    """Display colour (N, 3) of the object's points seen along `dirs` with surface `normals`."""
    albedo = TARGET_MEAN[obj.material, obj.colour] / SHADE_MEAN[obj.material]
    factor, white = shading_terms(obj.material, dirs, normals, highlights)
    return albedo * factor[:, None] + white[:, None]
