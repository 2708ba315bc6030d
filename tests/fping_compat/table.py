# SPDX-License-Identifier: MIT
"""fping_compat's inputs: the case table (`cases`) and the deliberate
differences (`expected-differences`); their syntax is in `cases`."""

import os
import shlex

HERE = os.path.dirname(os.path.abspath(__file__))


class Case:
    """One line of `cases`: ID SETUP FLAGS -- ARGS."""

    def __init__(self, line, lineno):
        head, sep, args = line.partition(" -- ")
        if not sep:
            raise ValueError(f"cases:{lineno}: no ' -- ' before the arguments")
        fields = head.split()
        if len(fields) != 3:
            raise ValueError(f"cases:{lineno}: want ID SETUP FLAGS -- ARGS")
        self.id, self.setup, flags = fields
        self.args = shlex.split(args.replace("{files}", os.path.join(HERE, "files")))
        self.flags = {}
        if flags != "-":
            for f in flags.split(","):
                key, _, value = f.partition("=")
                self.flags[key] = value
        known = {"streams", "stdin", "sigint", "sort", "mask", "sends", "min_ms", "ours_only",
                 "rc", "json"}
        unknown = set(self.flags) - known
        if unknown:
            raise ValueError(f"cases:{lineno}: unknown flags {sorted(unknown)}")
        if not (self.setup == "lo" or self.setup.startswith("sim:")):
            raise ValueError(f"cases:{lineno}: SETUP is 'lo' or 'sim:PROFILE'")

    def streams(self):
        return self.flags.get("streams", "out+err+rc").split("+")


def read_cases(path):
    cases = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if line.strip() and not line.lstrip().startswith("#"):
                cases.append(Case(line, lineno))
    ids = [c.id for c in cases]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise ValueError(f"cases: duplicate ids {sorted(dup)}")
    return cases


def read_expected(path):
    """{case id: (streams that may differ, reason)} from lines
    `ID STREAM[+STREAM] REASON` (streams: out, err, rc)."""
    expected = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if line and not line.startswith("#"):
                fields = line.split(None, 2)
                streams = set(fields[1].split("+")) if len(fields) == 3 else set()
                if not streams or not streams <= {"out", "err", "rc"}:
                    raise ValueError(f"expected-differences:{lineno}: want ID out|err|rc[+...] REASON")
                expected[fields[0]] = (streams, fields[2])
    return expected
