"""The median of each bar over several bench/run.sh results directories.

On a shared 2-core VM one run's bars move by more than their margins (the
same build has measured 62 % and 79 % of nginx's RPS in consecutive runs),
so a verdict is the median of N runs: each bar's value is taken from each
run's bars.json (written by summarize.py) and the median is compared with
the bar.

usage: bench/median.py bench/results/<t1> bench/results/<t2> ...
(bench/median.sh N runs bench/run.sh N times and calls this.)
"""

import json
import os
import statistics
import sys

runs = []
for d in sys.argv[1:]:
    try:
        with open(os.path.join(d, "bars.json")) as fh:
            runs.append(json.load(fh))
    except OSError:
        sys.exit(f"{d}: no bars.json (run bench/summarize.py {d} first)")
if not runs:
    sys.exit(__doc__)
print(f"### Bars, median of {len(runs)} runs")
print()
print("| Bar | runs | median | result |")
print("|---|---|---:|---|")
for name in runs[0]:
    vals = [r[name]["value"] for r in runs if name in r]
    b = runs[0][name]
    m = statistics.median(vals)
    ok = m >= b["limit"] if b["higher_better"] else m <= b["limit"]
    print(f"| {name} | {', '.join(f'{v:.3g}' for v in vals)} | {m:.3g} | {'PASS' if ok else '**FAIL**'} |")
