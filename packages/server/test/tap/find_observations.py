"""How an astronomer finds CCAT observations with pyvo, run by Pyvo.test.ts against a live server.

Usage: find_observations.py TAP_URL CASES_JSON
CASES_JSON is a list of {"ra", "dec", "start", "end", "instrument", "token" (optional)}. For each
case it prints the obs_ids found by a cone around the Source (sync), by a time range (async), by
an instrument, and the columns of the service's ivoa.obscore as pyvo read them: one JSON list.
"""
import json
import sys

import pyvo
import requests
from astropy.time import Time


def find(url, ra, dec, start, end, instrument, token=None):
    session = requests.Session()
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    service = pyvo.dal.TAPService(url, session=session)

    # A cone of 0.1 degree around the Source, nearest first.
    cone = service.search(
        f"""SELECT obs_id, target_name, s_ra, s_dec, access_url,
               DISTANCE(POINT('ICRS', s_ra, s_dec), POINT('ICRS', {ra}, {dec})) AS dist
            FROM ivoa.obscore
            WHERE 1 = CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', {ra}, {dec}, 0.1))
            ORDER BY dist"""
    )

    # Fields of view (s_region) that cover the Source, and those meeting a small triangle around it.
    covering = service.search(
        f"SELECT obs_id FROM ivoa.obscore WHERE 1 = CONTAINS(POINT('ICRS', {ra}, {dec}), s_region)"
    )
    triangle = ", ".join(f"{ra + dra}, {dec + ddec}" for dra, ddec in [(-0.2, -0.2), (0.2, -0.2), (0, 0.2)])
    meeting = service.search(
        f"SELECT obs_id, AREA(s_region) AS area FROM ivoa.obscore WHERE 1 = INTERSECTS(s_region, POLYGON('ICRS', {triangle}))"
    )

    # Observations overlapping a time range (ObsCore's times are MJD), as an asynchronous job.
    t0, t1 = Time(start).mjd, Time(end).mjd
    during = service.run_async(
        f"SELECT obs_id, t_min, t_max FROM ivoa.obscore WHERE t_min <= {t1} AND t_max >= {t0} ORDER BY t_min"
    )

    # Everything one instrument observed, with MAXREC.
    by_instrument = service.search(
        f"SELECT obs_id, instrument_name, em_min, em_max FROM ivoa.obscore WHERE instrument_name = '{instrument}'",
        maxrec=100,
    )

    return {
        "cone": [str(r["obs_id"]) for r in cone],
        "cone_target": [str(r["target_name"]) for r in cone],
        "covering": [str(r["obs_id"]) for r in covering],
        "meeting": [str(r["obs_id"]) for r in meeting],
        "area": [float(r["area"]) for r in meeting],
        "time": [str(r["obs_id"]) for r in during],
        "instrument": [str(r["obs_id"]) for r in by_instrument],
        "columns": [c.name for c in service.tables["ivoa.obscore"].columns],
    }


url, cases = sys.argv[1], json.loads(sys.argv[2])
print(json.dumps([find(url, **case) for case in cases]))
