# SPDX-License-Identifier: MIT
"""fping_compat's masking: the numbers that measure time become placeholders
before outputs are compared; counts (xmt/rcv, sequence numbers, bytes,
targets) stay as printed."""

import re

MASKS = [
    (re.compile(r"\[\d+\.\d+\]"), "[TIME]"),  # -D (seconds since the epoch)
    (re.compile(r"\[\d\d:\d\d:\d\d\]"), "[HH:MM:SS]"),  # -Q headers
    (re.compile(r"min/avg/max = [\d.e+-]+/[\d.e+-]+/[\d.e+-]+"), "min/avg/max = A/B/C"),
    (re.compile(r"outage\(ms\) = \d+"), "outage(ms) = O"),
    (re.compile(r"\b\d+(\.\d+)?(e[+-]\d+)?(?= (ms|avg|sec)\b)"), "R"),
    (re.compile(r"SET (min|avg|max) = \d+"), r"SET \1 = R"),
    (re.compile(r"(?<![\d.])\d+\.\d+(?![\d.])"), "F"),  # not 127.0.0.1
]
# fping -C: "host : 0.05 - 0.04": every value is a time or "-".
VCOUNT_LINE = re.compile(r"^(\S+ +: )((?:[\d.]+|-)(?: (?:[\d.]+|-))*)$")
COUNTS = [
    (re.compile(r"xmt/rcv/%loss = \d+/\d+/\d+%"), "xmt/rcv/%loss = S/R/L%"),
    (re.compile(r"SET (xmt|rcv|returned) = \d+"), r"SET \1 = N"),
]
LOSS = re.compile(r"\b\d+%")
VERSION = re.compile(r"^(\S+: Version )\S+.*$")


def mask(text, case):
    kinds = set(case.flags.get("mask", "").split("+")) - {""}
    out = []
    for line in text.split("\n"):
        m = VCOUNT_LINE.match(line)
        if m:
            line = m.group(1) + " ".join("-" if v == "-" else "R" for v in m.group(2).split())
        for pattern, repl in MASKS:
            line = pattern.sub(repl, line)
        if "counts" in kinds:
            for pattern, repl in COUNTS:
                line = pattern.sub(repl, line)
        if "loss" in kinds:
            line = LOSS.sub("L%", line)
        if "version" in kinds:
            line = VERSION.sub(r"\1V", line)
        out.append(line)
    if "sort" in case.flags:
        out = sorted(out)
    return "\n".join(out)
