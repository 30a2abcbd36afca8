"""Procedural street scenes: layout (label map) from one random stream, appearance from another.

Geometry lives in resolution-free coordinates (u = x / W, v = y / H), so one layout seed gives
the same scene at every resolution. A one-point perspective: horizon at v_h, vanishing point
at u_v; something at depth parameter t in (0, 1] stands on the ground row v_h + t (1 - v_h) and
is drawn at a size proportional to t. Objects are placed with t spread over 0.04..1 (25x), so
apparent sizes vary by far more than 10x, and far (tiny) objects are in nearly every scene.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLASSES = (
    ("sky", (70, 130, 180)),
    ("building", (70, 70, 70)),
    ("road", (128, 64, 128)),
    ("sidewalk", (244, 35, 232)),
    ("vegetation", (107, 142, 35)),
    ("terrain", (152, 251, 152)),
    ("fence", (190, 153, 153)),
    ("pole", (153, 153, 153)),
    ("traffic sign", (220, 220, 0)),
    ("traffic light", (250, 170, 30)),
    ("car", (0, 0, 142)),
    ("person", (220, 20, 60)),
)
SKY, BUILDING, ROAD, SIDEWALK, VEGETATION, TERRAIN, FENCE, POLE, SIGN, LIGHT, CAR, PERSON = range(12)
OBJECT_CLASSES = (POLE, SIGN, LIGHT, CAR, PERSON)


@dataclass
class Scene:
    label: np.ndarray  # (H, W) uint8 class ids
    instance: np.ndarray  # (H, W) int32: 0 for stuff, k > 0 for the k-th object / building
    horizon: float
    vanish: float


def _depth(rng: np.random.Generator) -> float:
    """Depth parameter t, log-uniform on [0.04, 1]: as many far objects as near ones."""
    return float(np.exp(rng.uniform(np.log(0.04), 0.0)))


class _Canvas:
    def __init__(self, h: int, w: int) -> None:
        self.h, self.w = h, w
        self.v = (np.arange(h) + 0.5)[:, None] / h
        self.u = (np.arange(w) + 0.5)[None, :] / w
        self.label = np.zeros((h, w), np.uint8)
        self.instance = np.zeros((h, w), np.int32)
        self.next_id = 1

    def box(self, u0: float, u1: float, v0: float, v1: float) -> tuple[slice, slice]:
        """Pixel slices covering [u0, u1] x [v0, v1], at least one pixel wide and tall."""
        x0, x1 = int(np.floor(u0 * self.w)), int(np.ceil(u1 * self.w))
        y0, y1 = int(np.floor(v0 * self.h)), int(np.ceil(v1 * self.h))
        x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
        return slice(max(y0, 0), min(y1, self.h)), slice(max(x0, 0), min(x1, self.w))

    def paint(self, cls: int, region: tuple[slice, slice], mask: np.ndarray | bool = True, inst: int = 0) -> None:
        lab, ins = self.label[region], self.instance[region]
        m = np.broadcast_to(mask, lab.shape)
        lab[m] = cls
        ins[m] = inst


def generate_layout(seed: int, height: int, width: int) -> Scene:
    rng = np.random.default_rng([seed, 1])
    c = _Canvas(height, width)
    u, v = c.u, c.v
    vh, uv = rng.uniform(0.36, 0.5), rng.uniform(0.4, 0.6)
    aspect = width / height
    t = np.clip((v - vh) / (1 - vh), 0, None)  # depth of ground rows (0 at the horizon)
    road_w, walk_w = rng.uniform(0.25, 0.5), rng.uniform(0.08, 0.22)
    dist = np.abs(u - uv)

    # stuff: sky; facades and tree rows as vertical planes beside the street, segmented along
    # depth; terrain where the ground shows; a fence on some sidewalks; sidewalk; road
    c.label[:] = SKY
    ground = v > vh
    c.paint(TERRAIN, (slice(None), slice(None)), ground)
    edge = road_w + walk_w
    plane = edge + (rng.uniform(0.1, 0.5) if rng.random() < 0.35 else 0.0)
    tp = dist / plane  # depth at which the side plane passes each column
    foot = vh + tp * (1 - vh)
    for side in (-1, 1):
        on_side = side * (u - uv) > 0
        lo = 0.02
        while lo < 4.0:  # segments from the vanishing point outwards, longer when nearer
            hi = lo * rng.uniform(1.3, 2.2)
            kind = BUILDING if rng.random() < 0.7 else VEGETATION
            tall = rng.uniform(0.8, 3.0) if kind == BUILDING else rng.uniform(0.4, 1.0)
            top = foot - tall * tp
            if kind == VEGETATION:  # a wobbly crown line
                top = top + 0.25 * tp * np.sin(u * rng.uniform(60, 120) + rng.uniform(0, 6))
            seg = on_side & (tp >= lo) & (tp < hi) & (v <= foot) & (v >= top)
            c.paint(kind, (slice(None), slice(None)), seg, inst=c.next_id)
            c.next_id += 1
            lo = hi
    if rng.random() < 0.4:  # a low fence: a vertical plane along the outer sidewalk edge
        tf = dist / edge
        fence_foot = vh + tf * (1 - vh)
        c.paint(FENCE, (slice(None), slice(None)), ground & (dist >= edge * t) & (v >= fence_foot - 0.12 * tf))
    c.paint(SIDEWALK, (slice(None), slice(None)), ground & (dist < (road_w + walk_w) * t))
    c.paint(ROAD, (slice(None), slice(None)), ground & (dist < road_w * t))

    # objects, far ones first so that near ones occlude them
    objects = []
    for _ in range(rng.integers(2, 7)):
        objects.append(("car", _depth(rng), rng.uniform(-0.85, 0.85)))
    for _ in range(rng.integers(1, 6)):
        objects.append(("person", _depth(rng), rng.choice([-1, 1]) * rng.uniform(1.02, 1.0 + walk_w / road_w)))
    for _ in range(rng.integers(1, 5)):
        kind = rng.choice(["pole", "sign", "light"])
        objects.append((kind, _depth(rng), rng.choice([-1, 1]) * (1.0 + 0.8 * walk_w / road_w)))
    objects.sort(key=lambda o: o[1])
    for kind, depth, lateral in objects:
        base_v = vh + depth * (1 - vh)
        cu = uv + lateral * road_w * depth
        inst = c.next_id
        c.next_id += 1
        if kind == "car":
            ch, cw = 0.2 * depth, 0.42 * depth / aspect
            r = c.box(cu - cw / 2, cu + cw / 2, base_v - ch, base_v)
            yy, xx = v[r[0]], u[:, r[1]]
            body = yy > base_v - 0.55 * ch
            cabin = (yy <= base_v - 0.55 * ch) & (np.abs(xx - cu) < cw * (0.32 + 0.12 * (yy - (base_v - ch)) / ch))
            c.paint(CAR, r, body | cabin, inst)
        elif kind == "person":
            ph, pw = 0.34 * depth, 0.07 * depth / aspect
            r = c.box(cu - pw / 2, cu + pw / 2, base_v - ph, base_v)
            yy, xx = v[r[0]], u[:, r[1]]
            head = ((xx - cu) / (0.3 * pw)) ** 2 + ((yy - (base_v - 0.9 * ph)) / (0.1 * ph)) ** 2 <= 1
            torso = (yy > base_v - 0.8 * ph) & (np.abs(xx - cu) < 0.5 * pw)
            c.paint(PERSON, r, head | torso, inst)
        else:
            ph, pw = 0.62 * depth, max(0.012 * depth / aspect, 0.5 / width)
            c.paint(POLE, c.box(cu - pw / 2, cu + pw / 2, base_v - ph, base_v), True, inst)
            if kind == "sign":
                s = 0.07 * depth
                r = c.box(cu - s / aspect / 2, cu + s / aspect / 2, base_v - ph - s * 0.2, base_v - ph + s * 0.8)
                c.paint(SIGN, r, True, inst)
            elif kind == "light":
                r = c.box(cu - 0.02 * depth / aspect, cu + 0.02 * depth / aspect, base_v - ph, base_v - ph + 0.1 * depth)
                c.paint(LIGHT, r, True, inst)
    return Scene(c.label, c.instance, float(vh), float(uv))


def _noise(rng: np.random.Generator, h: int, w: int, scale: int) -> np.ndarray:
    """Smooth value noise in [-1, 1]: a coarse random grid upsampled bilinearly."""
    gh, gw = max(2, h // scale + 2), max(2, w // scale + 2)
    grid = rng.uniform(-1, 1, (gh, gw))
    ys, xs = np.linspace(0, gh - 1.001, h), np.linspace(0, gw - 1.001, w)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    a, b = grid[y0][:, x0], grid[y0][:, x0 + 1]
    c_, d = grid[y0 + 1][:, x0], grid[y0 + 1][:, x0 + 1]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c_ * (1 - fx) + d * fx) * fy


def render_image(scene: Scene, appearance_seed: int) -> np.ndarray:
    """RGB uint8 image of a scene; the appearance seed picks colours, textures and lighting, so
    one label map has many plausible renderings."""
    rng = np.random.default_rng([appearance_seed, 2])
    lab, ins = scene.label, scene.instance
    h, w = lab.shape
    v = (np.arange(h) + 0.5)[:, None] / h
    u = (np.arange(w) + 0.5)[None, :] / w
    img = np.zeros((h, w, 3), np.float32)
    fine = rng.uniform(-1, 1, (h, w))
    dist = np.abs(u - scene.vanish) + 0.015
    t = np.clip((v - scene.horizon) / (1 - scene.horizon), 1e-3, None)

    def put(cls: int, rgb: np.ndarray) -> None:
        m = lab == cls
        img[m] = np.broadcast_to(rgb, (h, w, 3))[m]

    # sky: gradient from a zenith to a horizon colour, soft clouds
    zenith = rng.choice([[70, 120, 200], [110, 150, 210], [150, 150, 160], [90, 90, 150]]) + rng.uniform(-20, 20, 3)
    low = np.array([215, 210, 200]) + rng.uniform(-30, 30, 3)
    k = np.clip(v / max(scene.horizon, 1e-3), 0, 1)[..., None]
    clouds = np.clip(_noise(rng, h, w, 12), 0, 1)[..., None] * rng.uniform(0, 70)
    put(SKY, zenith * (1 - k) + low * k + clouds)
    # buildings: a colour per facade, perspective window grid
    base = rng.choice([[150, 130, 110], [120, 110, 105], [170, 160, 140], [140, 80, 60], [100, 105, 115]], size=64)
    base = base + rng.uniform(-25, 25, (64, 3))
    facade = base[ins % 64]
    col = np.log(dist) * rng.uniform(8, 14)
    row = (v - scene.horizon) / dist * rng.uniform(1.5, 3.0)
    windows = ((col % 1) < 0.5) & ((row % 1) < 0.45)
    win_rgb = np.array([60, 70, 90]) + rng.uniform(-20, 40, 3)
    bld = facade * (0.9 + 0.1 * fine[..., None])
    bld = np.where(windows[..., None], win_rgb * (0.8 + 0.2 * fine[..., None]), bld)
    put(BUILDING, bld)
    # vegetation and terrain: noisy greens and browns
    green = np.array([60, 110, 40]) + rng.uniform(-25, 25, 3)
    put(VEGETATION, green * (0.75 + 0.25 * _noise(rng, h, w, 3)[..., None]) + 20 * fine[..., None])
    soil = np.array([140, 130, 80]) + rng.uniform(-25, 25, 3)
    put(TERRAIN, soil * (0.85 + 0.15 * _noise(rng, h, w, 4)[..., None]))
    # road: asphalt, dashed centre line receding in perspective, a shadow band
    asphalt = np.array([80, 80, 85]) + rng.uniform(-20, 20, 1)
    road = asphalt * (0.92 + 0.08 * fine[..., None])
    dashes = (np.abs(u - scene.vanish) < 0.006 * t) & ((1.0 / t * rng.uniform(0.4, 0.8)) % 1 < 0.5)
    road = np.where(dashes[..., None], np.array([230, 230, 220]), road)
    put(ROAD, road)
    walk = np.array([165, 155, 150]) + rng.uniform(-25, 25, 3)
    tiles = (((u - scene.vanish) / t * 6) % 1 < 0.08) | ((1 / t * 3) % 1 < 0.08)
    put(SIDEWALK, walk * np.where(tiles, 0.8, 1.0)[..., None] * (0.95 + 0.05 * fine[..., None]))
    fence_rgb = np.array([120, 100, 80]) + rng.uniform(-20, 20, 3)
    put(FENCE, fence_rgb * np.where((u * w / 2) % 1 < 0.5, 0.75, 1.0)[..., None])
    # objects: a colour per instance
    put(POLE, np.array([90, 90, 95]) + rng.uniform(-15, 15, 3))
    sign_colours = np.array([[200, 30, 30], [30, 60, 190], [230, 200, 40], [240, 240, 240]], np.float32)
    put(SIGN, sign_colours[rng.integers(0, 4, 64)][ins % 64])
    lamp_rgb = np.array([[230, 40, 30], [240, 200, 40], [40, 220, 90]], np.float32)[rng.integers(0, 3)]
    put(LIGHT, np.where((fine > 0.2)[..., None], lamp_rgb, np.array([30, 30, 32])))
    # cars: paint per instance, darker glass on the upper part, shade towards the ground
    top = np.full(ins.max() + 1, h, np.int64)
    bottom = np.zeros(ins.max() + 1, np.int64)
    ys = np.broadcast_to(np.arange(h)[:, None], (h, w))
    np.minimum.at(top, ins[lab == CAR], ys[lab == CAR])
    np.maximum.at(bottom, ins[lab == CAR], ys[lab == CAR])
    y_rel = (ys - top[ins]) / np.maximum(bottom[ins] - top[ins] + 1, 1)
    paint = rng.uniform(20, 235, (64, 3))[ins % 64]
    glass = np.array([40, 50, 70]) + 0.2 * paint
    put(CAR, np.where((y_rel < 0.4)[..., None], glass, paint * (1.1 - 0.4 * y_rel[..., None])))
    shirts = rng.uniform(20, 235, (64, 3))
    put(PERSON, shirts[ins % 64] * (0.9 + 0.1 * fine[..., None]))
    # global lighting: exposure, colour cast, sensor noise
    img = img * rng.uniform(0.75, 1.15) + rng.uniform(-12, 12, 3) + rng.normal(0, 3, (h, w, 1))
    return np.clip(img, 0, 255).astype(np.uint8)


def generate_scene(seed: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(label uint8 H x W, image uint8 H x W x 3) for one seed (appearance seeded by it too)."""
    scene = generate_layout(seed, height, width)
    return scene.label, render_image(scene, seed)
