#!/usr/bin/env python3
"""Convert Natural Earth's 110 m country boundaries (TopoJSON, npm package world-atlas 2.x,
countries-110m.json) into src/report/world.txt, the compact map `fwlog report --html` embeds.

Run once (the output is committed):
    cd "$(mktemp -d)" && npm pack world-atlas@2 && tar xzf world-atlas-*.tgz
    python3 tools/world-map.py package/countries-110m.json /usr/share/iso-codes/json/iso_3166-1.json \
        > src/report/world.txt
(the second file is Debian's iso-codes package: ISO 3166-1 numeric -> alpha-2 codes).

Output: comment lines (#), then one line per country: `CC|name|path`, where path is SVG path
data in an equirectangular grid of tenths of a degree (x = (lon + 180) * 10, y = (90 - lat) * 10,
so the world is 3600 x 1800). Rings that cross the 180th meridian are cut there: the ring is
unwrapped to continuous longitudes, clipped at +-180, and the part beyond is moved to the
other edge, so no shape draws a streak across the map.
"""
import json
import sys


def decode_arcs(topo):
    sx, sy = topo["transform"]["scale"]
    tx, ty = topo["transform"]["translate"]
    arcs = []
    for arc in topo["arcs"]:
        x = y = 0
        pts = []
        for dx, dy in arc:
            x += dx
            y += dy
            pts.append((x * sx + tx, y * sy + ty))
        arcs.append(pts)
    return arcs


def ring(arcs, idxs):
    pts = []
    for i in idxs:
        a = arcs[i] if i >= 0 else list(reversed(arcs[~i]))
        pts.extend(a if not pts else a[1:])
    return pts


def unwrap(pts):
    out = [pts[0]]
    for lon, lat in pts[1:]:
        prev = out[-1][0]
        while lon - prev > 180:
            lon -= 360
        while lon - prev < -180:
            lon += 360
        out.append((lon, lat))
    return out


def clip(pts, keep, edge):
    """Sutherland-Hodgman against the vertical line lon = edge; keep(lon) names the side."""
    out = []
    n = len(pts)
    for i in range(n):
        a, b = pts[i], pts[(i + 1) % n]
        ia, ib = keep(a[0]), keep(b[0])
        if ia:
            out.append(a)
        if ia != ib:
            t = (edge - a[0]) / (b[0] - a[0])
            out.append((edge, a[1] + t * (b[1] - a[1])))
    return out


def pieces(pts):
    u = unwrap(pts)
    if abs(u[-1][0] - u[0][0]) > 1:
        # Goes round the pole (Antarctica): the original ring already runs along the edges.
        return [pts]
    hi, lo = max(p[0] for p in u), min(p[0] for p in u)
    if hi <= 180 and lo >= -180:
        return [u]
    if hi > 180:
        main = clip(u, lambda x: x <= 180, 180)
        over = [(x - 360, y) for x, y in clip(u, lambda x: x >= 180, 180)]
    else:
        main = clip(u, lambda x: x >= -180, -180)
        over = [(x + 360, y) for x, y in clip(u, lambda x: x <= -180, -180)]
    return [p for p in (main, over) if len(p) >= 3]


def path(rings):
    out = []
    for r in rings:
        prev = None
        cmd = []
        for lon, lat in r:
            p = (round((lon + 180) * 10), round((90 - lat) * 10))
            if p != prev:
                cmd.append("%d %d" % p)
                prev = p
        if len(cmd) >= 3:
            out.append("M" + "L".join(cmd) + "Z")
    return "".join(out)


def main():
    topo = json.load(open(sys.argv[1]))
    iso = json.load(open(sys.argv[2]))["3166-1"]
    alpha2 = {c["numeric"]: c["alpha_2"] for c in iso}
    # Natural Earth has no ISO code for these; Kosovo is XK in GeoIP databases.
    by_name = {"Kosovo": "XK"}
    arcs = decode_arcs(topo)
    print("# Natural Earth 1:110m Cultural Vectors, Admin 0 - Countries (public domain,")
    print("# naturalearthdata.com), as TopoJSON in the npm package world-atlas 2.0.2 (ISC, Mike")
    print("# Bostock); converted by tools/world-map.py. ISO 3166-1 alpha-2 codes from Debian's")
    print("# iso-codes. Format: CC|name|SVG path in tenths of a degree, equirectangular, 3600x1800.")
    for g in topo["objects"]["countries"]["geometries"]:
        name = g["properties"]["name"]
        cc = alpha2.get(g.get("id"), by_name.get(name, "-"))
        polys = g["arcs"] if g["type"] == "MultiPolygon" else [g["arcs"]]
        rings = []
        for poly in polys:
            for r in poly:
                rings.extend(pieces(ring(arcs, r)))
        print("%s|%s|%s" % (cc, name, path(rings)))


main()
