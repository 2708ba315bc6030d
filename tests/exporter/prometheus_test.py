#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""icmpengine-exporter scraped by a real Prometheus (Debian's 2.42), inside a
private network namespace this script creates; everything on loopback.

    prometheus_test.py [--peer ours|smokeping|fake] [--only a,b,c1,c2] [EXPORTER]

EXPORTER is the icmpengine-exporter binary (or env ICMPENGINE_EXPORTER).
Run as root: the script re-executes itself under `unshare -n`, brings lo up,
routes 198.18.99.0/24 into lo (a silent target: nothing answers there), and
starts the exporters and Prometheus on 127.0.0.1. The scenarios:

  a   continuous mode: 20 loopback targets and the silent one at
      --ping.interval=100ms; Prometheus's rate(smokeping_requests_total),
      histogram_quantile over smokeping_response_duration_seconds, the silent
      target's counts, and Prometheus's values against the exporter's /metrics;
      `promtool check metrics` on /metrics (d).
  b   probe mode with blackbox-style relabelling (count=3, interval=50ms):
      probe_success 1, 1, 0 for 127.0.0.1, ::1 and the silent target,
      icmpengine_probe_packets_sent 3; `promtool check metrics` on /probe (d).
  c1  two exporters, --shard 0/2 and --shard 1/2, over the same 20 hosts:
      every host scraped exactly once.
  c2  two probe-mode exporters and Prometheus `hashmod` relabelling: every
      target probed by exactly one exporter.

--peer smokeping runs scenario a (with d) on Debian's prometheus-smokeping-
prober, the program ours replaces, to validate the checks themselves; --peer
fake runs every scenario on fake_exporter.py (a stand-in that only serves
plausible pages) to validate the Prometheus configurations.

Exit status: 0 every check passed, 1 a check failed, 77 cannot run here (not
root, no prometheus/promtool, no exporter binary); under CI=true that is 1.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

sys.dont_write_bytecode = True  # run from the source tree: leave it clean
import promharness as ph  # noqa: E402 (after the line above)
from scenarios import SCENARIOS  # noqa: E402
from hostile import hostile  # noqa: E402
from readme_configs import readme_configs  # noqa: E402

SCENARIOS["e"] = hostile
SCENARIOS["r"] = readme_configs

HERE = os.path.dirname(os.path.abspath(__file__))


class subject:
    """The program under test and how to start it."""

    def __init__(self, peer, exporter):
        self.peer = peer
        self.exporter = exporter
        self.full_labels = peer != "smokeping"  # 0.6.1 has only ip and host

    def command(self, port, hosts, extra):
        listen = f"--web.listen-address=127.0.0.1:{port}"
        if self.peer == "smokeping":
            # Its Debian default config pings localhost: give it an empty one.
            return ["prometheus-smokeping-prober", listen, "--config.file=" + self.empty_config
                    ] + extra + hosts
        if self.peer == "fake":
            return [sys.executable, os.path.join(HERE, "fake_exporter.py"), listen] + extra + hosts
        return [self.exporter, listen] + extra + hosts

    def start(self, name, port, hosts, extra):
        """Starts an exporter and waits for its line saying it listens."""
        if self.peer == "smokeping":
            ready = r'msg="Listening on" address=127\.0\.0\.1:\d+'
        else:
            ready = r"listening on 127\.0\.0\.1:\d+"
        c = ph.child(name, self.command(port, hosts, extra), ready)
        c.wait_ready()
        c.url = f"http://127.0.0.1:{port}"
        return c

    def stop(self, c, ck):
        """SIGTERM; ours and the fake must exit 0 (graceful shutdown)."""
        rc = c.stop()
        if self.peer == "smokeping":
            print(f"  (smokeping_prober exited with status {rc} on SIGTERM)")
        else:
            ck.check(rc == 0, f"{c.name}: exit status {rc} after SIGTERM (want 0)")


def promtool_clean(ck, what, text):
    """`promtool check metrics` prints nothing and exits 0 on a clean page."""
    p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True)
    out = (p.stdout + p.stderr).strip()
    ck.check(p.returncode == 0 and not out,
             f"promtool check metrics on {what}: exit {p.returncode}, "
             + ("no output" if not out else "printed:\n" + out[:2000]))


def inner(opts):
    ph.setup_namespace()
    ck = ph.checks()
    work = tempfile.mkdtemp(prefix="prometheus_test.")
    subj = subject(opts.peer, opts.exporter)
    subj.empty_config = os.path.join(work, "empty.yml")
    with open(subj.empty_config, "w", encoding="utf-8") as f:
        f.write("targets: []\n")
    try:
        for name in opts.only:
            print("scenario " + SCENARIOS[name].__doc__.strip().splitlines()[0], flush=True)
            start = time.monotonic()
            try:
                SCENARIOS[name](subj, ck, os.path.join(work, name), promtool_clean)
            except RuntimeError as e:  # a wait that reached its bound, a child that died
                ck.check(False, f"scenario {name}: {e}")
            except Exception:  # noqa: BLE001 (anything else: report it, run the next one)
                ck.check(False, f"scenario {name}: " + traceback.format_exc())
            print(f"  ({time.monotonic() - start:.1f} s)", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{ck.passed} checks passed, {len(ck.failed)} failed")
    for f in ck.failed:
        print("FAILED: " + f.splitlines()[0])
    return 1 if ck.failed else 0


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("exporter", nargs="?", default=os.environ.get("ICMPENGINE_EXPORTER"))
    ap.add_argument("--peer", choices=["ours", "smokeping", "fake"], default="ours")
    ap.add_argument("--only", default=None,
                    help="comma-separated scenarios (default: all the peer can run)")
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    opts = ap.parse_args(argv)
    default = {"ours": "a,b,c1,c2,e,r", "smokeping": "a", "fake": "a,b,c1,c2"}[opts.peer]
    opts.only = (opts.only or default).split(",")
    bad = [s for s in opts.only if s not in SCENARIOS]
    if bad:
        ap.error(f"unknown scenario {bad[0]} (have {', '.join(SCENARIOS)})")
    if opts.peer == "smokeping" and set(opts.only) - {"a"}:
        ap.error("smokeping_prober has no /probe and no --shard: only scenario a")
    return opts


def main():
    opts = parse_args(sys.argv[1:])
    if opts.inner:
        return inner(opts)
    needed = ["prometheus", "promtool", "ip", "sysctl"]
    if opts.peer == "smokeping":
        needed.append("prometheus-smokeping-prober")
    for prog in needed:
        if shutil.which(prog) is None:
            ph.skip_or_fail(f"{prog} is not installed (Debian: prometheus, "
                            "prometheus-smokeping-prober, iproute2, procps)")
    if opts.peer == "ours":
        if not opts.exporter or not os.access(opts.exporter, os.X_OK):
            ph.skip_or_fail(f"no exporter binary (argument or ICMPENGINE_EXPORTER): "
                            f"{opts.exporter!r}")
        opts.exporter = os.path.abspath(opts.exporter)
        sys.argv = [sys.argv[0], opts.exporter, "--peer", "ours", "--only", ",".join(opts.only)]
    return ph.reexec_in_namespace(sys.argv)


if __name__ == "__main__":
    sys.exit(main())
