#!/usr/bin/env python3
"""Counts sluice's JSON access log for bench/run.sh: lines per status, and
server-side errors (any status but 200, except the 499s of the slow streams
the probe drops on purpose). usage: logstats.py sluice.log > stats.json"""

import collections
import json
import sys

statuses = collections.Counter()
levels = collections.Counter()
errors = collections.Counter()
requests = 0
with open(sys.argv[1], errors="replace") as f:
    for line in f:
        try:
            r = json.loads(line)
        except ValueError:
            levels["unparsed"] += 1
            continue
        levels[r.get("level", "?")] += 1
        if r.get("message") != "request":
            continue
        requests += 1
        st = r.get("status")
        statuses[str(st)] += 1
        if st != 200 and not (st == 499 and r.get("model_requested") == "bench-slow"):
            errors[f"{st} {r.get('error', '')} {r.get('model_requested', '')}".strip()] += 1
print(json.dumps({
    "requests": requests,
    "statuses": statuses,
    "levels": levels,
    "unexpected": sum(errors.values()),
    "unexpected_by_kind": errors,
}))
