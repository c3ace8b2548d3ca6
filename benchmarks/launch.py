"""``python -S -I launch.py RUSAGE.json -- PROGRAM ARGS...``: run one benchmark mode and record its resource use.

Kept to the standard library and started with ``-S -I`` so that this process stays a few MB: Linux carries the
parent's RSS high-water mark into a child's ``ru_maxrss`` across exec, so the parent of a measured mode must be
small (see infra.py). Writes exit code, peak RSS and CPU times from ``os.wait4`` to RUSAGE.json.
"""

import json
import os
import sys


def main() -> int:
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    target, argv = sys.argv[1], sys.argv[3:]
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        try:
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    with open(target, "w", encoding="utf-8") as out:
        json.dump(
            {"exit_code": code, "maxrss_kib": usage.ru_maxrss, "utime": usage.ru_utime, "stime": usage.ru_stime}, out
        )
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
