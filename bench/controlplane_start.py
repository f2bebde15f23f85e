"""Warm start of the local control plane: seconds from `up` to a ready kube-apiserver and controller manager.

Starts and stops the control plane a few times (binaries already built) and prints each start, the median,
and, as the baseline in the same run, the cost of just launching the binaries (`--version`), which no start
can beat. Also prints the disk used by the binary cache.

    .venv/bin/python bench/controlplane_start.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hack"))

from controlplane import Binaries, down, up  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    bins = Binaries.from_cache()
    bins.check()
    starts = []
    for _ in range(args.runs):
        directory = Path(tempfile.mkdtemp(prefix="acs-cp-"))
        began = time.monotonic()
        up(directory)
        starts.append(time.monotonic() - began)
        down(directory)
    launches = []
    for _ in range(args.runs):
        began = time.monotonic()
        for binary in (bins.etcd, bins.kube_apiserver, bins.kube_controller_manager):
            subprocess.run([str(binary), "--version"], capture_output=True, check=True)
        launches.append(time.monotonic() - began)
    cache = bins.etcd.parents[1]
    usage = subprocess.run(["du", "-sh", str(cache)], capture_output=True, text=True).stdout.split()[0]
    print(f"warm start (s):      {' '.join(f'{s:.2f}' for s in starts)}  median {statistics.median(starts):.2f}")
    print(f"baseline launch (s): {' '.join(f'{s:.2f}' for s in launches)}  median {statistics.median(launches):.2f}")
    print(f"binary cache:        {usage} in {cache}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
