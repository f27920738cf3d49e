"""`make bench`: run every benchmark and print markdown rows for docs/benchmarks.md.

Benchmarks are not tests: they measure, and they say whether a target was met. Each module exposes `main()`
returning a list of result dicts {name, value, unit, target, met}.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
from typing import Any

BENCHMARKS = ["benchmarks.hub_fanout", "benchmarks.push_fanout"]


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ntars.settings")
    selected = sys.argv[1:] or BENCHMARKS
    print(f"Machine: {machine()}\n")
    print("| benchmark | result | target | met |")
    print("|---|---|---|---|")
    failed = False
    for name in selected:
        module = importlib.import_module(name if "." in name else f"benchmarks.{name}")
        results: list[dict[str, Any]] = module.main()
        for r in results:
            failed |= r.get("met") is False
            met = {True: "yes", False: "NO", None: "-"}[r.get("met")]
            print(f"| {r['name']} | {r['value']} {r.get('unit', '')} | {r.get('target', '-')} | {met} |", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
