"""CarRacing's frame, drawn with the same pixels in less time.

gymnasium's CarRacing draws its road by walking all ~400 grass squares and
~600 road and kerb polygons in Python every frame: each one's corners are
rotated and scaled one ``pygame.math.Vector2`` at a time, then tested against
the screen, and only the ~50 in view are drawn. That walk is most of a frame's
cost (about 60% of a 64x64 training step here, ``benchmarks.carracing_env``).

``cull_offscreen`` gives an env a ``_render_road`` that rotates every corner of
the track at once with NumPy, keeps the polygons near the screen (a bound one
pixel wider than gymnasium's own on every side, so float rounding can only keep
more), and hands those, in gymnasium's order, to gymnasium's own
``_draw_colored_polygon``, which transforms and tests them exactly as before.
A polygon gymnasium would draw is never culled, and nothing else changes, so the
frame is the same pixel for pixel (tests/test_episode_options.py checks it
against gymnasium's drawing). Any other env is returned untouched.
"""

from __future__ import annotations

import sys
import types

import gymnasium
import numpy as np

# Wider than gymnasium's screen bound by this many pixels on every side: float
# rounding between NumPy's rotation and pygame's is far below it.
MARGIN = 1.0


def _car_racing_module():
    return sys.modules.get("gymnasium.envs.box2d.car_racing")


def cull_offscreen(env: gymnasium.Env) -> gymnasium.Env:
    """Returns ``env`` with CarRacing's road drawn from the polygons near the
    screen only (see the module docstring); any other env as it is."""
    module = _car_racing_module()
    base = env.unwrapped
    if module is not None and isinstance(base, module.CarRacing):
        base._render_road = types.MethodType(_culled_road, base)
    return env


def _grass(grass_dim: float) -> list[list[tuple[float, float]]]:
    """Returns the grass squares in gymnasium's order."""
    squares = []
    for x in range(-20, 20, 2):
        for y in range(-20, 20, 2):
            squares.append(
                [
                    (grass_dim * x + grass_dim, grass_dim * y + 0),
                    (grass_dim * x + 0, grass_dim * y + 0),
                    (grass_dim * x + 0, grass_dim * y + grass_dim),
                    (grass_dim * x + grass_dim, grass_dim * y + grass_dim),
                ]
            )
    return squares


class _Track:
    """The polygons of one track (the grass, then the road and its kerbs) with
    their colours, and all their corners as one array. The colours are read
    when drawn: a tile's changes in place once the car has touched it, and the
    grass's (None here) is the env's."""

    def __init__(self, env, module):
        polys = [(p, None) for p in _grass(module.GRASS_DIM)]
        for poly, color in env.road_poly:
            polys.append(([(p[0], p[1]) for p in poly], color))
        self.road_poly = env.road_poly  # the list this was built from
        self.polys = polys
        self.corners = np.array([c for p, _ in polys for c in p], np.float64)
        sizes = np.array([len(p) for p, _ in polys])
        self.starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])

    def near_screen(self, zoom, translation, angle, module) -> np.ndarray:
        """Returns the indices of the polygons with a corner within the bound."""
        x, y = self.corners[:, 0], self.corners[:, 1]
        cos, sin = np.cos(angle), np.sin(angle)
        sx = (x * cos - y * sin) * zoom + translation[0]
        sy = (x * sin + y * cos) * zoom + translation[1]
        reach = module.MAX_SHAPE_DIM + MARGIN
        inside = (
            (sx >= -reach)
            & (sx <= module.WINDOW_W + reach)
            & (sy >= -reach)
            & (sy <= module.WINDOW_H + reach)
        )
        return np.flatnonzero(np.logical_or.reduceat(inside, self.starts))


def _culled_road(self, zoom, translation, angle):
    """CarRacing's ``_render_road``, drawing only the polygons near the screen."""
    module = _car_racing_module()
    track = getattr(self, "_janus_track", None)
    if track is None or track.road_poly is not self.road_poly:
        track = self._janus_track = _Track(self, module)
    b = module.PLAYFIELD
    field = [(b, b), (b, -b), (-b, -b), (-b, b)]
    self._draw_colored_polygon(
        self.surf, field, self.bg_color, zoom, translation, angle, clip=False
    )
    for i in track.near_screen(zoom, translation, angle, module):
        poly, color = track.polys[i]
        color = self.grass_color if color is None else [int(c) for c in color]
        self._draw_colored_polygon(self.surf, poly, color, zoom, translation, angle)
