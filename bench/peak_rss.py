"""Run a command; print its exit status and peak resident memory (MiB) as one JSON line.

    python bench/peak_rss.py python train.py --threads=1

Linux keeps the largest resident size a process has had, across exec, including the address space
it was forked with: a command started straight from a large process (the bench, after training in
process) reports that process's size. Started from this small interpreter, the figure is the
command's own (and, as the maximum not the sum, that of any child it waited for).
"""
import json
import os
import subprocess
import sys

if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python bench/peak_rss.py COMMAND [ARG ...]")
    try:
        process = subprocess.Popen(sys.argv[1:])
    except OSError as err:
        sys.exit(f"error: cannot start {sys.argv[1]!r}: {err.strerror}")
    _, status, usage = os.wait4(process.pid, 0)
    print(json.dumps({"returncode": os.waitstatus_to_exitcode(status), "peak_mib": usage.ru_maxrss / 1024}))
