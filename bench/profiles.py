"""Where the time goes: py-spy's collapsed stacks (`--format raw`) summed into shares.

    summarize(text) -> {"samples", "self": [(frame, share)], "inclusive": [...], "areas": [...]}

`self`: the frame on top of the stack (native code called from it counts as that frame, since
py-spy runs without --native).  `inclusive`: stacks that contain the frame at least once.
`areas`: self time grouped by package (egress, aiohttp, asyncio, opentelemetry, ...).
Idle samples (the event loop waiting in epoll) are excluded by py-spy, and only the main
thread (stacks rooted at `<module>`) is counted: shares are of the event loop's busy time.
Other threads (the span exporter's, mostly waiting on a Condition) are reported apart.
"""

from __future__ import annotations

import re
from collections import Counter

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _area(file: str) -> str:
    f = file.replace("\\", "/")
    for marker, name in (("/egress/", "egress"), ("egress/", "egress"), ("aiohttp/", "aiohttp"),
                         ("asyncio/", "asyncio"), ("opentelemetry/", "opentelemetry"),
                         ("multidict/", "multidict"), ("yarl/", "yarl"), ("orjson", "orjson"),
                         ("jsonschema_rs", "jsonschema_rs"), ("logging/", "logging"),
                         ("prometheus_client", "prometheus_client"), ("tenacity/", "tenacity"), ("pybreaker", "pybreaker")):
        if f.startswith(marker) or marker in f:
            return name
    return "stdlib/other"


def _short(frame: str) -> tuple[str, str]:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip(), ""
    file = m.group("file")
    for anchor in ("site-packages/", "lib/python3"):
        if anchor in file:
            file = file.split(anchor, 1)[1]
            if anchor == "lib/python3":
                file = file.split("/", 1)[1] if "/" in file else file
    if "/egress/" in file:
        file = "egress/" + file.split("/egress/", 1)[1]
    return f"{m.group('func')} ({file})", file


def summarize(text: str, top: int = 15) -> dict:
    own, incl, areas = Counter(), Counter(), Counter()
    total = other = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_short(f) for f in stack.split(";") if f.strip()]
        if not frames:
            continue
        if not frames[0][0].startswith("<module>"):
            other += n
            continue
        total += n
        leaf, leaf_file = frames[-1]
        own[leaf] += n
        areas[_area(leaf_file)] += n
        for name in {f for f, _ in frames}:
            incl[name] += n
    if not total:
        return {"samples": 0, "other_thread_samples": other, "self": [], "inclusive": [], "areas": []}

    def shares(c: Counter, k: int) -> list[tuple[str, float]]:
        return [(name, round(n / total, 4)) for name, n in c.most_common(k)]

    inclusive = [(n, s) for n, s in shares(incl, 200)
                 if ("egress/" in n or "aiohttp/" in n or "opentelemetry" in n) and s < 0.999][:top]
    return {"samples": total, "other_thread_samples": other, "self": shares(own, top), "inclusive": inclusive, "areas": shares(areas, 12)}
