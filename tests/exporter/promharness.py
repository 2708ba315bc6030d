# SPDX-License-Identifier: MIT
"""Helpers of prometheus_test.py: the private namespace, child processes that
announce readiness on stderr, a real Prometheus and its HTTP API, and a record
of the checks made.

Nothing here sleeps to order events: a child is ready when it printed its
line, Prometheus when it logged "Server is ready", and a value is awaited by
polling the thing that produces it under a generous overall bound.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

# The overall bound of every wait: far above what a loaded 2-core machine
# needs (seconds), so that only a broken program reaches it.
WAIT_BOUND = 90.0
POLL_STEP = 0.25  # seconds between two polls of a condition

# Routed into lo where nothing answers (tests/support/engine_test.cpp).
SILENT_PREFIX = "198.18.99.0/24"
SILENT_TARGET = "198.18.99.1"


def skip_or_fail(why):
    """Exit 77 (meson: skipped), or 1 under CI=true where a skip is a failure."""
    in_ci = os.environ.get("CI") == "true"
    print(f"SKIP: {why}" + (" (CI=true: a skipped system test is a failure)" if in_ci else ""),
          file=sys.stderr)
    sys.exit(1 if in_ci else 77)


def run(cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def setup_namespace():
    """Inside the fresh namespace: lo up, unprivileged ICMP for every gid,
    the silent prefix routed into lo."""
    run(["ip", "link", "set", "lo", "up"])
    run(["sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647"])
    run(["ip", "route", "replace", SILENT_PREFIX, "dev", "lo"])


def reexec_in_namespace(argv):
    """Runs this script again in a new network namespace (`unshare -n`), with
    `--inner` added; returns its exit status."""
    if shutil.which("unshare") is None:
        skip_or_fail("unshare(1) is missing")
    if os.geteuid() != 0:
        skip_or_fail("needs root to create a private network namespace")
    cmd = ["unshare", "-n", sys.executable, os.path.abspath(argv[0]), "--inner"] + argv[1:]
    return subprocess.run(cmd).returncode


class checks:
    """Every check prints what it compared; failures are counted."""

    def __init__(self):
        self.failed = []
        self.passed = 0

    def check(self, ok, what):
        print(("  ok    " if ok else "  FAIL  ") + what, flush=True)
        if ok:
            self.passed += 1
        else:
            self.failed.append(what)
        return ok


class child:
    """A process whose stderr is drained by a thread (so it never blocks on a
    full pipe) and which is ready once a line matches `ready`."""

    def __init__(self, name, cmd, ready):
        self.name = name
        self.cmd = cmd
        self.lines = []
        self._ready_re = re.compile(ready)
        self._ready = threading.Event()
        self.ready_match = None
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, errors="replace")
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            if not self._ready.is_set():
                m = self._ready_re.search(line)
                if m:
                    self.ready_match = m
                    self._ready.set()
        self._ready.set()  # end of stderr: wait_ready() looks at ready_match

    def wait_ready(self):
        """Waits for the ready line; raises with the log if the process
        exits first or the bound passes."""
        if not self._ready.wait(WAIT_BOUND) or self.ready_match is None:
            raise RuntimeError(f"{self.name} never printed its ready line "
                               f"({self._ready_re.pattern!r}); exit status "
                               f"{self.proc.poll()}; stderr:\n" + self.log_tail())
        return self.ready_match

    def log_tail(self, n=30):
        return "\n".join("    " + line for line in self.lines[-n:])

    def stop(self):
        """SIGTERM, then waits (SIGKILL after the bound); returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(WAIT_BOUND)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)
        return self.proc.returncode


# Everything is on 127.0.0.1 in the namespace: never through an http_proxy
# the environment may name.
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(url, timeout=30.0):
    """(status, body text) of a GET; HTTP errors are returned, not raised."""
    try:
        with DIRECT.open(url, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", errors="replace")


def parse_exposition(text):
    """{(name, frozenset of (label, value)): float} of a text exposition."""
    sample = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
    label = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = sample.match(line)
        if m:
            labels = frozenset(label.findall(m.group(2) or ""))
            out[(m.group(1), labels)] = float(m.group(3))
    return out


def series_by(samples, name, key):
    """{value of label `key`: sample value} for metric `name`."""
    return {dict(labels).get(key): v for (n, labels), v in samples.items() if n == name}


def brief(result, limit=25):
    """An instant vector in one line: "127.0.0.1=10, ::1=9.8, ..."."""
    items = [f"{lb.get('ip') or lb.get('instance') or lb}={v:.4g}" for lb, v, _ in result]
    return "[" + ", ".join(items[:limit]) + (", ..." if len(items) > limit else "") + "]"


class prometheus:
    """A real Prometheus on 127.0.0.1:port with the given scrape jobs."""

    def __init__(self, workdir, port, scrape_configs, raw_yaml=None, interval="1s"):
        """`raw_yaml`: a `scrape_configs:` block as text (the README's),
        used as it is instead of `scrape_configs`."""
        self.url = f"http://127.0.0.1:{port}"
        os.makedirs(workdir, exist_ok=True)
        glob = {"scrape_interval": interval, "scrape_timeout": interval,
                "evaluation_interval": "1s"}
        path = os.path.join(workdir, "prometheus.yml")
        with open(path, "w", encoding="utf-8") as f:
            if raw_yaml is None:
                json.dump({"global": glob, "scrape_configs": scrape_configs}, f,
                          indent=1)  # JSON is YAML
            else:
                f.write("global: " + json.dumps(glob) + "\n" + raw_yaml)
        self.proc = child("prometheus", [
            "prometheus", f"--config.file={path}",
            f"--storage.tsdb.path={os.path.join(workdir, 'tsdb')}",
            f"--web.listen-address=127.0.0.1:{port}", "--log.level=info"
        ], r"Server is ready to receive web requests")
        self.proc.wait_ready()

    def query(self, expr):
        """The instant vector of `expr`: [(labels dict, value float, timestamp)]."""
        url = self.url + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        status, body = http_get(url)
        data = json.loads(body)
        if status != 200 or data.get("status") != "success":
            raise RuntimeError(f"query {expr!r}: HTTP {status}: {body[:300]}")
        return [(r["metric"], float(r["value"][1]), float(r["value"][0]))
                for r in data["data"]["result"]]

    def query_by(self, expr, key):
        """{value of label `key`: value} of `expr`."""
        return {labels.get(key): v for labels, v, _ in self.query(expr)}

    def wait_for(self, what, expr, done):
        """Polls `expr` until done(result) is true; returns the result, or
        raises after the bound with the last result."""
        deadline = time.monotonic() + WAIT_BOUND
        while True:
            result = self.query(expr)
            if done(result):
                return result
            if time.monotonic() > deadline:
                raise RuntimeError(f"waited {WAIT_BOUND:.0f} s for {what}; {expr} last gave "
                                   f"{brief(result)}; {self.unhealthy_targets()}")
            time.sleep(POLL_STEP)

    def unhealthy_targets(self):
        """What Prometheus says of the scrapes that fail (its /api/v1/targets)."""
        _, body = http_get(self.url + "/api/v1/targets")
        bad = [f"{t['labels'].get('instance')} ({t['scrapeUrl']}): {t['lastError']}"
               for t in json.loads(body)["data"]["activeTargets"] if t["health"] != "up"]
        return "failing scrapes: " + ("; ".join(bad[:5]) if bad else "none")

    def stop(self):
        return self.proc.stop()
