#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""fping compatibility suite: the same command through Debian's fping and
through icmpengine installed as `fping`, in one private network namespace,
outputs compared after masking the measured numbers.

    run.py --tool build/tools/icmpengine --netsim build/tests/netsim [-k PATTERN] [-v]

The life of one case (a line of `cases`):
  1. The outer process (this script) writes the case to a spec file and starts
     the inner process in a private namespace: `unshare -n -m` for loopback
     cases, `netsim --records --profile P` for simulated networks (198.18/16).
  2. The inner process (run.py --inner SPEC RESULT) makes /etc/resolv.conf
     point at 127.0.0.1 (no name query can leave), then runs the command with
     PATH starting at a directory holding `fping` -> /usr/bin/fping, then,
     after a marker ping to 198.18.255.1 when simulated, with PATH starting at
     one holding `fping` -> the built tool. Both get the same arguments, stdin
     and, for -l, SIGINT after the same number of output lines.
  3. The outer process masks the numbers that measure time (masking.py),
     compares stdout, stderr and the exit code, and for simulated cases the
     requests each run sent (netsim's records, split at the
     marker). A difference fails the case unless `expected-differences`
     lists that stream of that case with its reason.

Files: table.py reads the table and expected-differences, pair.py is the
inner side, masking.py the masks, run.py (this) the outer side.

Only addresses inside the namespaces are pinged: 127.0.0.0/8, ::1 and the
simulator's 198.18.0.0/16. Exit status: 0 all cases pass, 1 some differ,
77 cannot run here (no root, no fping; under CI=true that is 1).
"""

import argparse
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # run from the source tree: leave it clean
from masking import mask  # noqa: E402 (after the line above)
from pair import MARKER, inner  # noqa: E402
from table import HERE, read_cases, read_expected  # noqa: E402

DEFAULT_TIMEOUT = 120.0  # seconds per command: far above any case's need


RECORD = re.compile(r"^netsim: #\d+ \S+ > (\S+) ")


def sends_by_run(netsim_err):
    """Targets of the requests netsim saw, split at the marker: [fping, ours]."""
    runs = [[], []]
    current = 0
    for line in netsim_err.splitlines():
        m = RECORD.match(line)
        if m:
            if m.group(1) == MARKER:
                current = 1
            else:
                runs[current].append(m.group(1))
    return runs


def run_case(case, opts, work):
    spec = {
        "args": case.args, "stdin": case.flags.get("stdin"), "sigint": case.flags.get("sigint"),
        "timeout": DEFAULT_TIMEOUT, "sim": case.setup.startswith("sim:"),
        "ours_only": "ours_only" in case.flags, "bin_fping": os.path.join(work, "bin_fping"),
        "bin_ours": os.path.join(work, "bin_ours"),
        "resolv_conf": os.path.join(work, "resolv.conf"),
    }
    spec_path = os.path.join(work, case.id + ".spec.json")
    result_path = os.path.join(work, case.id + ".result.json")
    with open(spec_path, "w", encoding="utf-8") as f:
        json.dump(spec, f)
    inner_cmd = ["unshare", "-m", "--propagation", "private", sys.executable,
                 os.path.abspath(__file__), "--inner", spec_path, result_path]
    if spec["sim"]:
        cmd = [opts.netsim, "--records", "--seed", "1", "--profile", case.setup[4:], "--"]
    else:
        cmd = ["unshare", "-n"]
    p = subprocess.run(cmd + inner_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=4 * DEFAULT_TIMEOUT)
    if not os.path.exists(result_path):
        return [("other", "harness: the inner run failed (exit %d): %s" %
                 (p.returncode, p.stderr.decode(errors="replace").strip()[:800]))], None
    with open(result_path, encoding="utf-8") as f:
        results = json.load(f)
    return compare(case, results, p.stderr.decode(errors="replace")), results


def compare(case, results, netsim_err):
    """The differences of one case: (out|err|rc|other, text), a diff multi-line."""
    diffs = []
    ours = results["ours"]
    if ours["timed_out"]:
        diffs.append(("other", "ours: killed after %ds" % DEFAULT_TIMEOUT))
    if "ours_only" in case.flags:
        return diffs + [("other", d) for d in check_ours_only(case, ours)] + check_patterns(
            case, ours)
    ref = results["fping"]
    if ref["timed_out"]:
        diffs.append(("other", "fping: killed after %ds (the case is wrong)" % DEFAULT_TIMEOUT))
    for stream in case.streams():
        if stream == "rc":
            if ref["rc"] != ours["rc"]:
                diffs.append(("rc", f"exit code: fping {ref['rc']}, ours {ours['rc']}"))
            continue
        a, b = mask(ref[stream], case), mask(ours[stream], case)
        if a != b:
            name = {"out": "stdout", "err": "stderr"}[stream]
            diff = difflib.unified_diff(a.split("\n"), b.split("\n"), f"fping {name}",
                                        f"ours {name}", lineterm="", n=2)
            diffs.append((stream, f"{name} differs:\n" + "\n".join("    " + d for d in diff)))
    diffs += check_patterns(case, ours)
    if "min_ms" in case.flags:
        floor = float(case.flags["min_ms"])
        for who, r in (("fping", ref), ("ours", ours)):
            if r["elapsed_ms"] < floor:
                diffs.append(("other",
                              f"{who} ended after {r['elapsed_ms']:.0f} ms, before {floor:.0f} ms"))
    if "sends" in case.flags:
        target = case.flags["sends"]
        runs = sends_by_run(netsim_err)
        n_ref, n_ours = runs[0].count(target), runs[1].count(target)
        if n_ref != n_ours:
            diffs.append(("other", f"requests to {target}: fping sent {n_ref}, ours {n_ours}"))
    return diffs


def check_patterns(case, ours):
    """files/want/ID.out.re and ID.err.re: a regular expression that our
    stdout or stderr must match (re.search), where fping is no oracle (an
    expected difference says what ours should print instead)."""
    diffs = []
    for stream in ("out", "err"):
        path = os.path.join(HERE, "files", "want", f"{case.id}.{stream}.re")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                pattern = f.read().rstrip("\n")
            if not re.search(pattern, ours[stream]):
                name = {"out": "stdout", "err": "stderr"}[stream]
                diffs.append(("other", f"ours {name} does not match {pattern!r}: "
                                       f"{ours[stream][:200]!r}"))
    return diffs


def check_ours_only(case, ours):
    """Options fping 5.1 lacks (5.5's): no oracle binary. Checks the exit code
    (rc=N), that stdout is JSON objects with these top-level keys (json=K+K),
    and the masked output against files/want/ID.out and ID.err, written from
    fping's source."""
    diffs = []
    if "rc" in case.flags and ours["rc"] != int(case.flags["rc"]):
        diffs.append(f"exit code {ours['rc']}, want {case.flags['rc']}")
    if "json" in case.flags:
        keys = set(case.flags["json"].split("+")) - {""}
        lines = [x for x in ours["out"].split("\n") if x.strip()]
        seen = set()
        if not lines:
            diffs.append("no JSON on stdout")
        for x in lines:
            try:
                obj = json.loads(x)
                if not isinstance(obj, dict):
                    raise ValueError("not an object")
                seen.update(obj)
            except ValueError as e:
                diffs.append(f"stdout line is not a JSON object ({e}): {x[:100]}")
                break
        if keys and seen != keys:
            diffs.append(f"JSON objects have keys {sorted(seen)}, want {sorted(keys)}")
    for stream in ("out", "err"):
        path = os.path.join(HERE, "files", "want", f"{case.id}.{stream}")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                want = f.read()
            a, b = mask(want, case), mask(ours[stream], case)
            if a != b:
                name = {"out": "stdout", "err": "stderr"}[stream]
                diff = difflib.unified_diff(a.split("\n"), b.split("\n"), f"want {name}",
                                            f"ours {name}", lineterm="", n=2)
                diffs.append(f"{name} differs:\n" + "\n".join("    " + d for d in diff))
    return diffs


def can_run(opts):
    """Empty if the suite can run here, else why not."""
    if os.geteuid() != 0:
        return "needs root (private network and mount namespaces, netsim)"
    if not os.path.exists(opts.fping):
        return f"{opts.fping} is missing (Debian package fping)"
    for path in (opts.tool, opts.netsim):
        if not os.access(path, os.X_OK):
            return f"{path} is not built"
    if subprocess.run(["unshare", "-n", "-m", "true"]).returncode != 0:
        return "cannot create private namespaces (unshare -n -m)"
    return ""


def summary_line(diffs):
    first = diffs[0][1].split("\n")
    if len(first) > 1:  # a diff: name its first changed lines
        minus = next((x.strip()[1:] for x in first if x.strip().startswith("-")
                      and not x.strip().startswith("---")), "")
        plus = next((x.strip()[1:] for x in first if x.strip().startswith("+")
                     and not x.strip().startswith("+++")), "")
        return f"{first[0]} fping: {minus[:70]!r} ours: {plus[:70]!r}"
    return first[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tool", help="the built icmpengine")
    ap.add_argument("--netsim", help="the built tests/netsim")
    ap.add_argument("--fping", default="/usr/bin/fping")
    ap.add_argument("--cases", default=os.path.join(HERE, "cases"))
    ap.add_argument("--expected", default=os.path.join(HERE, "expected-differences"))
    ap.add_argument("-k", dest="pattern", help="only cases whose id matches this regex")
    ap.add_argument("-v", "--verbose", action="store_true", help="print both outputs")
    ap.add_argument("--inner", nargs=2, help=argparse.SUPPRESS)
    opts = ap.parse_args()
    if opts.inner:
        return inner(*opts.inner)
    if not opts.tool or not opts.netsim:
        ap.error("--tool and --netsim are required")
    opts.tool, opts.netsim = os.path.abspath(opts.tool), os.path.abspath(opts.netsim)

    cases = read_cases(opts.cases)
    expected = read_expected(opts.expected)
    stale = sorted(set(expected) - {c.id for c in cases})
    if stale:
        print(f"fping_compat: expected-differences names unknown cases {stale}")
        return 1
    why = can_run(opts)
    if why:
        in_ci = os.environ.get("CI") == "true"
        print(f"SKIP: fping_compat {why}." + (" CI=true: a skip is a failure." if in_ci else ""))
        return 1 if in_ci else 77
    if opts.pattern:
        cases = [c for c in cases if re.search(opts.pattern, c.id)]

    work = tempfile.mkdtemp(prefix="fping_compat.")
    try:
        for name, target in (("bin_fping", opts.fping), ("bin_ours", opts.tool)):
            os.mkdir(os.path.join(work, name))
            os.symlink(target, os.path.join(work, name, "fping"))
        with open(os.path.join(work, "resolv.conf"), "w") as f:
            f.write("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        failed, explained, now_same = [], [], []
        for case in cases:
            diffs, results = run_case(case, opts, work)
            if opts.verbose and results:
                for who, r in results.items():
                    print(f"--- {case.id} {who}: exit {r['rc']}, {r['elapsed_ms']:.0f} ms")
                    print(r["out"] + r["err"], end="")
            allowed, reason = expected.get(case.id, (set(), ""))
            unexplained = [d for d in diffs if d[0] not in allowed]
            if unexplained:
                status = "DIFFERS: " + summary_line(unexplained)
                failed.append((case.id, unexplained))
            elif diffs:
                status = "expected difference: " + reason
                explained.append(case.id)
            elif case.id in expected:
                status = "same (listed in expected-differences)"
                now_same.append(case.id)
            else:
                status = "same"
            print(f"{case.id}: {status}", flush=True)
        for case_id, diffs in failed:
            print(f"\n=== {case_id}")
            print("\n".join(text for _, text in diffs))
        print(f"\nfping_compat: {len(cases)} cases, {len(cases) - len(failed)} pass "
              f"({len(explained)} expected differences), {len(failed)} differ")
        if now_same:
            print("fping_compat: now identical, remove from expected-differences: "
                  + " ".join(now_same))
        return 1 if failed else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
