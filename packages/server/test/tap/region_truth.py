"""Which rows an ADQL region predicate should select, computed with astropy, independently of the
service's SQL: run by Regions.test.ts.

Usage: region_truth.py SPEC_JSON   (prints one JSON object)
With {"centroids": [{"id", "region"}]} instead, answers {"<id>": [ra, dec]}: each POLYGON's or BOX's centroid.
SPEC_JSON: {"points": [[ra, dec], ...], "radii": [r, ...], "cases": [{"id", "predicate", "region"}]}
where region is {"circle": [ra, dec, r]}, {"polygon": [[ra, dec], ...]} or {"box": [ra, dec, w, h]},
and predicate one of "point_in" (the row's position in the region), "region_meets"
(INTERSECTS(s_region, region)), "region_in" (CONTAINS(s_region, region)), "in_region"
(CONTAINS(region, s_region)). Every point has one row per radius (the row's s_fov / 2).
Answers {"<id>": {"yes": ["<point>:<radius index>", ...], "unsure": [...]}}: rows within a
sampling tolerance of the boundary are unsure and not compared.

Polygon edges are great-circle arcs sampled with astropy's directional_offset_by; a point is
inside when the position angle from it to the boundary winds once around (the winding number).
A BOX is the rectangle of the gnomonic (TAN) projection at its centre (STC's box), made with
astropy.wcs.
"""
import json
import sys

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.wcs import WCS

SAMPLES = 2000  # per edge
UNSURE = 0.01  # degrees, beyond half the spacing of the samples: rows this close to a decision boundary are not compared


def box_corners(ra, dec, w, h):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [ra, dec]
    wcs.wcs.crpix = [1, 1]  # FITS pixels count from 1, pixel_to_world from 0
    wcs.wcs.cdelt = [1, 1]
    x, y = np.degrees(np.tan(np.radians(w / 2))), np.degrees(np.tan(np.radians(h / 2)))
    corners = wcs.pixel_to_world([x, -x, -x, x], [y, y, -y, -y])
    return [[c.ra.deg, c.dec.deg] for c in corners]


def boundary(vertices):
    """Dense samples of the polygon's great-circle edges, in order, as one SkyCoord."""
    ras, decs = [], []
    n = len(vertices)
    for i in range(n):
        a = SkyCoord(*vertices[i], unit="deg")
        b = SkyCoord(*vertices[(i + 1) % n], unit="deg")
        steps = np.arange(SAMPLES) / SAMPLES
        s = a.directional_offset_by(a.position_angle(b), a.separation(b) * steps)
        ras.append(s.ra.deg)
        decs.append(s.dec.deg)
    return SkyCoord(np.concatenate(ras), np.concatenate(decs), unit="deg")


def polygon_facts(points, vertices):
    """For each point: inside, the distance to the boundary (degrees), the boundary, and the sampling margin.

    The boundary winds around a point when it separates the point from its antipode; of the two,
    the inside one is the one nearer the boundary's mean direction (these test polygons are small).
    """
    edge = boundary(vertices)
    spacing = edge[:-1].separation(edge[1:]).deg.max()
    mean = edge.cartesian.xyz.value.mean(axis=1)
    column, row = points.reshape(-1, 1), edge.reshape(1, -1)
    pa = column.position_angle(row).rad
    step = np.diff(np.concatenate([pa, pa[:, :1]], axis=1), axis=1)
    step = (step + np.pi) % (2 * np.pi) - np.pi
    nearer = points.cartesian.xyz.value.T @ mean > 0
    separation = column.separation(row).deg
    inside = (np.abs(step.sum(axis=1)) > np.pi) & nearer
    return inside, separation.min(axis=1), separation.max(axis=1), spacing / 2 + UNSURE


def decide(value, margin):
    """True/False when the quantity is clearly on one side of 0, None when it is within margin."""
    return None if abs(value) < margin else value > 0


def case(points, radii, predicate, region):
    out = {"yes": [], "unsure": []}
    margin = UNSURE
    if "circle" in region:
        ra, dec, r = region["circle"]
        sep = points.separation(SkyCoord(ra, dec, unit="deg")).deg
        # polygon-only facts are unused for a circle
        facts = lambda i, rr: {"point_in": r - sep[i], "region_meets": r + rr - sep[i], "region_in": r - rr - sep[i], "in_region": rr - r - sep[i]}
    else:
        vertices = region["polygon"] if "polygon" in region else box_corners(*region["box"])
        key = json.dumps(vertices)
        if key not in known:
            known[key] = polygon_facts(points, vertices)
        inside, dist, far, margin = known[key]

        def facts(i, rr):
            signed = dist[i] if inside[i] else -dist[i]  # positive inside, negative outside
            return {
                "point_in": signed,
                "region_meets": signed + rr,  # inside, or the boundary within rr
                "region_in": signed - rr if inside[i] else -1.0,
                "in_region": rr - far[i],  # the whole boundary within the row's circle
            }
    for i in range(len(points)):
        for k, rr in enumerate(radii if predicate != "point_in" else [radii[0]]):
            keys = [f"{i}:{j}" for j in range(len(radii))] if predicate == "point_in" else [f"{i}:{k}"]
            verdict = decide(facts(i, rr)[predicate], margin)
            for key in keys:
                if verdict is None:
                    out["unsure"].append(key)
                elif verdict:
                    out["yes"].append(key)
    return out


def centroid(vertices, steps=1500):
    """The centre of area on the sphere by quadrature in the gnomonic plane of astropy's WCS, where
    great-circle edges are straight lines: the mean unit vector over the inside cells, each
    weighted by its area on the sphere, du dv / (1 + u^2 + v^2)^(3/2).

    The gnomonic projection is central: the unit vector of plane point (u, v) is M (1, u, v) /
    sqrt(1 + u^2 + v^2) for one linear M, which astropy's WCS gives by three points; so the sum of
    the weighted unit vectors is M times the sum of (1, u, v) / (1 + u^2 + v^2)^2, and the
    millions of cells need no conversion each."""
    mean = SkyCoord([v[0] for v in vertices], [v[1] for v in vertices], unit="deg").cartesian.xyz.value.mean(axis=1)
    centre = SkyCoord(*mean, representation_type="cartesian").spherical
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [centre.lon.deg, centre.lat.deg]
    wcs.wcs.crpix = [1, 1]
    wcs.wcs.cdelt = [1, 1]
    px, py = wcs.world_to_pixel(SkyCoord([v[0] for v in vertices], [v[1] for v in vertices], unit="deg"))
    # cell centres, so no cell counts twice along the edges of the bounding rectangle
    xs = px.min() + (np.arange(steps) + 0.5) * (px.max() - px.min()) / steps
    ys = py.min() + (np.arange(steps) + 0.5) * (py.max() - py.min()) / steps
    gx, gy = np.meshgrid(xs, ys)
    gx, gy = gx.ravel(), gy.ravel()
    inside = np.zeros(gx.shape, dtype=bool)
    for i in range(len(px)):  # even-odd rule
        x1, y1, x2, y2 = px[i], py[i], px[(i + 1) % len(px)], py[(i + 1) % len(px)]
        crosses = (y1 > gy) != (y2 > gy)
        inside ^= crosses & (gx < x1 + (gy - y1) * (x2 - x1) / np.where(y2 == y1, 1, y2 - y1))
    gx, gy = gx[inside], gy[inside]
    u, v = np.radians(gx), np.radians(gy)
    weight = 1 / (1 + u * u + v * v) ** 2  # the area's (3/2) and the unit vector's 1/2
    a = 0.1  # radians in the plane: any offset does, M is linear
    ax = np.degrees(a)
    origin, along_u, along_v = wcs.pixel_to_world([0, ax, 0], [0, 0, ax]).cartesian.xyz.value.T
    scale = np.sqrt(1 + a * a)
    m = np.column_stack([origin, (scale * along_u - origin) / a, (scale * along_v - origin) / a])
    xyz = m @ np.array([weight.sum(), (u * weight).sum(), (v * weight).sum()])
    c = SkyCoord(*xyz, representation_type="cartesian").spherical
    return [c.lon.deg % 360, c.lat.deg]


known = {}
spec = json.loads(sys.argv[1])
if "centroids" in spec:
    print(json.dumps({c["id"]: centroid(c["region"]["polygon"] if "polygon" in c["region"] else box_corners(*c["region"]["box"])) for c in spec["centroids"]}))
    sys.exit(0)
points = SkyCoord([p[0] for p in spec["points"]], [p[1] for p in spec["points"]], unit="deg")
print(json.dumps({c["id"]: case(points, spec["radii"], c["predicate"], c["region"]) for c in spec["cases"]}))
