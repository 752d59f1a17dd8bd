"""From an ObsCore query to raw files on disk with pyvo, run by SingleFileS3.test.ts against a live server.

Usage: fetch_raw_files.py TAP_URL CASES_JSON
CASES_JSON is a list of {"ra", "dec", "start", "end", "instrument", "out", "token" (optional),
"follow" (optional: DataLink URLs to open whatever the queries found)}. For each case it finds
observations by a cone around the Source, by a time range (async) and by an instrument, opens the
DataLink links of the observations the cone found (and of "follow"), downloads every raw file
(`#this`) into the folder "out", and prints what it did: one JSON list, one object per case.
"""
import hashlib
import json
import os
import sys

import pyvo
import requests
from astropy.time import Time
from pyvo.dal.adhoc import DatalinkResults


def fetch(url, ra, dec, start, end, instrument, out, token=None, follow=()):
    session = requests.Session()
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    service = pyvo.dal.TAPService(url, session=session)

    cone = service.search(
        f"""SELECT obs_id, obs_publisher_did, access_url, access_format
            FROM ivoa.obscore
            WHERE 1 = CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', {ra}, {dec}, 0.1))"""
    )
    t0, t1 = Time(start).mjd, Time(end).mjd
    during = service.run_async(f"SELECT obs_id FROM ivoa.obscore WHERE t_min <= {t1} AND t_max >= {t0}")
    by_instrument = service.search(f"SELECT obs_id FROM ivoa.obscore WHERE instrument_name = '{instrument}'", maxrec=100)

    # access_url is each row's DataLink service. pyvo 1.2's row.getdatalink() and
    # iter_datalinks() open it without the service's session, so without the token: open it
    # with the session that carries it.
    datalink_urls = [row.getdataurl() for row in cone if row["access_format"].startswith("application/x-votable+xml;content=datalink")]
    files, errors = [], []
    for datalink_url in datalink_urls + list(follow):
        try:
            links = DatalinkResults.from_result_url(datalink_url, session=session)
        except pyvo.dal.DALAccessError as e:
            # proprietary data asked for without a token: the service asks for credentials (a
            # 401 whose VOTable pyvo reads as an AuthenticationFault)
            errors.append(str(e))
            continue
        # include_narrower=False: else pyvo downloads the IVOA's vocabulary from www.ivoa.net
        # first, and fails on a machine that cannot reach it
        for link in links.bysemantics("#this", include_narrower=False):
            if link.error_message:
                errors.append(link.error_message)
                continue
            response = session.get(link.access_url, stream=True, timeout=60)
            response.raise_for_status()
            # The server cuts a file that fails its checksum short, but requests (with urllib3
            # 1.x) does not notice a short body: check the size and the checksum it announced.
            algorithm, _, expected = response.headers["x-ccat-checksum"].partition(":")
            digest = hashlib.new(algorithm)
            path = os.path.join(out, f"{len(files)}.bin")
            with open(path, "wb") as f:
                for chunk in response.iter_content(chunk_size=1 << 16):
                    digest.update(chunk)
                    f.write(chunk)
            if os.path.getsize(path) != link.content_length or digest.hexdigest() != expected:
                os.remove(path)
                raise IOError(f"{link.access_url}: incomplete or wrong download, removed")
            files.append({
                "access_url": link.access_url,
                "content_length": link.content_length,
                "link_auth": link.get("link_auth", decode=True),
                "path": path,
                "checksum": f"{algorithm}:{digest.hexdigest()}",
                "read_from": response.headers.get("x-ccat-read-from"),
            })

    return {
        "cone": [str(r["obs_id"]) for r in cone],
        "time": [str(r["obs_id"]) for r in during],
        "instrument": [str(r["obs_id"]) for r in by_instrument],
        "datalink": datalink_urls,
        "files": files,
        "errors": errors,
    }


url, cases = sys.argv[1], json.loads(sys.argv[2])
print(json.dumps([fetch(url, **case) for case in cases]))
