#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""icmpengine-exporter's life as an operator sees it, end to end.

    python3 tests/exporter/lifecycle_test.py build/tools/exporter/icmpengine-exporter

Runs in a private network namespace it creates (re-executes itself under
`unshare -n`, brings lo up): every ping goes to loopback, every HTTP request
to 127.0.0.1. Checks the command line's errors (a bad flag, a bad config
file named by file and line, an address in use, ICMP sockets the kernel
refuses), then one exporter through start-up, /metrics, /probe (and the
allow-list), the status page, SIGHUP reloads (good and bad), and SIGTERM
with a probe in flight. Waits are on the exporter's own output and answers
(its "listening on" log line, counters that move), never on sleeps; the
only time bounds are generous deadlines (60 s) that fail the test if
nothing happens.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

DEADLINE = 60.0
failures = []


def check(condition, what):
    print(("ok   " if condition else "FAIL ") + what, flush=True)
    if not condition:
        failures.append(what)


def enter_namespace():
    if os.environ.get("EXPORTER_TEST_IN_NS") != "1":
        env = dict(os.environ, EXPORTER_TEST_IN_NS="1")
        os.execvpe("unshare", ["unshare", "-n", sys.executable] + sys.argv, env)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    with open("/proc/sys/net/ipv4/ping_group_range", "w") as f:
        f.write("0 2147483647")


class Exporter:
    """One exporter process; its stderr is read by a thread."""

    def __init__(self, binary, args):
        self.proc = subprocess.Popen([binary] + args, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.address = None

    def _read(self):
        for line in self.proc.stderr:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.lines.append(None)  # end of output
            self.cond.notify_all()

    def wait_line(self, pattern):
        """The first stderr line matching `pattern` (a regex), or None."""
        rx = re.compile(pattern)
        end = time.monotonic() + DEADLINE
        with self.cond:
            seen = 0
            while time.monotonic() < end:
                while seen < len(self.lines):
                    line = self.lines[seen]
                    seen += 1
                    if line is None:
                        return None
                    if rx.search(line):
                        return line
                self.cond.wait(timeout=1.0)
        return None

    def wait_listening(self):
        line = self.wait_line(r"listening on")
        m = re.search(r"listening on ([0-9.]+:[0-9]+|\[[0-9a-f:]+\]:[0-9]+)", line or "")
        self.address = m.group(1) if m else None
        return self.address

    def get(self, path, timeout=DEADLINE):
        try:
            with urllib.request.urlopen(f"http://{self.address}{path}", timeout=timeout) as r:
                return r.status, r.headers.get("Content-Type", ""), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Content-Type", ""), e.read().decode()

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return None


def samples(text, name):
    """{label-set text: value} for the samples of metric `name`."""
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            key, _, value = line.rpartition(" ")
            out[key[len(name):]] = float(value)
    return out


def wait_for(condition, what):
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.1)  # polling a condition, not a bound
    check(False, what + " (within 60 s)")
    return None


def run(binary, args):
    return subprocess.run([binary] + args, capture_output=True, text=True, timeout=DEADLINE)


def command_line_errors(binary, tmp):
    r = run(binary, ["--no-such-flag"])
    check(r.returncode == 1 and "error: unknown long flag '--no-such-flag'" in r.stderr,
          f"an unknown flag: exit 1 and kingpin's message ({r.stderr.strip()!r})")
    r = run(binary, ["--ping.interval=fast"])
    check(r.returncode == 1 and "ping.interval" in r.stderr,
          f"a bad duration names its flag ({r.stderr.strip()!r})")
    r = run(binary, ["--help"])
    check(r.returncode == 0 and "--config.file" in r.stdout, "--help: exit 0, the flags")
    r = run(binary, ["--version"])
    check(r.returncode == 0 and "icmpengine-exporter" in r.stdout, "--version")
    bad = os.path.join(tmp, "bad.yml")
    with open(bad, "w") as f:
        f.write("targets:\n- hosts:\n  - 127.0.0.1\n  interval: 1x\n")
    r = run(binary, ["--config.file=" + bad, "--web.listen-address=127.0.0.1:0"])
    check(r.returncode == 1 and f"{bad}:4" in r.stderr and "interval" in r.stderr,
          f"a bad config file: exit 1 naming file and line 4 ({r.stderr.strip()!r})")
    missing = os.path.join(tmp, "missing.yml")
    r = run(binary, ["--config.file=" + missing])
    check(r.returncode == 1 and missing in r.stderr, "a missing config file: exit 1, named")


def address_in_use(binary, running):
    r = run(binary, ["--web.listen-address=" + running.address, "127.0.0.1"])
    check(r.returncode == 1 and "in use" in r.stderr and running.address in r.stderr,
          f"an address in use: exit 1, named ({r.stderr.strip()!r})")


def sockets_refused(binary):
    """As nobody, with no group allowed ICMP datagram sockets."""
    with open("/proc/sys/net/ipv4/ping_group_range", "w") as f:
        f.write("1 0")
    try:
        r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                            "--inh-caps=-all", "--bounding-set=-all", binary,
                            "--web.listen-address=127.0.0.1:0", "127.0.0.1"],
                           capture_output=True, text=True, timeout=DEADLINE)
        check(r.returncode == 1 and "ping_group_range" in r.stderr,
              f"sockets refused: exit 1 naming the sysctl ({r.stderr.strip()[:160]!r})")
    finally:
        with open("/proc/sys/net/ipv4/ping_group_range", "w") as f:
            f.write("0 2147483647")


def write_config(path, hosts, label="a"):
    with open(path + ".new", "w") as f:
        f.write("targets:\n- hosts:\n")
        for h in hosts:
            f.write(f"  - {h}\n")
        f.write(f"  interval: 100ms\n  labels:\n    site: {label}\n")
    os.replace(path + ".new", path)


def requests_of(e):
    _, _, text = e.get("/metrics")
    return {re.search(r'host="([^"]*)"', k).group(1): v
            for k, v in samples(text, "smokeping_requests_total").items()}


def continuous_and_reload(e, config):
    status, ctype, text = e.get("/metrics")
    check(status == 200 and ctype.startswith("text/plain"), "/metrics: 200 text/plain")
    first = wait_for(lambda: (lambda r: r if len(r) == 3 and min(r.values()) >= 5 else None)(
        requests_of(e)), "every target has sent 5 pings")
    check(first is not None and set(first) == {"127.0.0.1", "127.0.0.2", "::1"},
          f"the three configured hosts are pinged ({sorted(first or {})})")
    check('site="a"' in text, "the group's label is on the samples")
    if shutil.which("promtool"):
        p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                           text=True)
        check(p.returncode == 0, f"promtool check metrics: clean ({(p.stdout + p.stderr).strip()!r})")
    elif os.environ.get("CI") == "true":
        check(False, "promtool is installed (CI=true)")
    kept_before = requests_of(e)["127.0.0.1"]
    write_config(config, ["127.0.0.1", "127.0.0.3"])
    e.proc.send_signal(signal.SIGHUP)
    after = wait_for(lambda: (lambda r: r if "127.0.0.3" in r and "127.0.0.2" not in r else None)(
        requests_of(e)), "SIGHUP: the new target appears, the removed one goes")
    if after:
        check(after["127.0.0.1"] >= kept_before,
              f"SIGHUP: an unchanged target keeps its counter ({kept_before} -> {after['127.0.0.1']})")
        later = wait_for(lambda: (lambda r: r if r.get("127.0.0.1", 0) > kept_before + 3 else None)(
            requests_of(e)), "SIGHUP: the unchanged target is still pinged")
        check(later is not None, f"SIGHUP: the unchanged target goes on ({kept_before} -> "
              f"{(later or {}).get('127.0.0.1')})")
    with open(config, "w") as f:
        f.write("targets:\n- hosts: [127.0.0.1]\n  colour: blue\n")
    e.proc.send_signal(signal.SIGHUP)
    bad = wait_for(lambda: e.get("/metrics")[2].find(
        "icmpengine_exporter_config_last_reload_successful 0") >= 0,
        "a bad reload sets config_last_reload_successful to 0")
    if bad:
        check(set(requests_of(e)) == {"127.0.0.1", "127.0.0.3", "::1"},
              "a bad reload keeps the running targets")


def probes_and_page(e):
    status, _, text = e.get("/probe?target=127.0.0.1&count=3&interval=10ms")
    check(status == 200 and "probe_success 1" in text, "/probe 127.0.0.1: probe_success 1")
    status, _, text = e.get("/probe?target=192.0.2.1")
    check(status == 403, f"/probe outside --probe.allow: 403 ({status}: {text.strip()!r})")
    status, _, text = e.get("/probe?target=127.0.0.1&count=zero")
    check(status == 400 and "count" in text, f"/probe with a bad count: 400 naming it ({text.strip()!r})")
    status, _, text = e.get("/probe")
    check(status == 400 and "target" in text, "/probe without a target: 400")
    status, ctype, text = e.get("/")
    check(status == 200 and ctype.startswith("text/html") and "<svg" in text and "<script" not in text,
          "/: the status page, with SVG and no script")
    status, _, _ = e.get("/nowhere")
    check(status == 404, "an unknown path: 404")


def shutdown_with_probe_in_flight(e):
    result = {}

    def slow_probe():
        try:
            result["answer"] = e.get("/probe?target=127.0.0.1&count=50&interval=100ms&timeout=10s")
        except Exception as x:  # a connection closed by the shutdown is fine too
            result["error"] = repr(x)

    t = threading.Thread(target=slow_probe)
    t.start()
    # The probe is in flight once the exporter has counted its request.
    wait_for(lambda: "icmpengine_exporter_http_requests_total" in e.get("/metrics")[2] and
             samples(e.get("/metrics")[2], "icmpengine_exporter_http_connections_open").get("", 0) >= 2,
             "the slow probe's connection is open")
    code = e.stop(signal.SIGTERM)
    t.join(DEADLINE)
    check(code == 0, f"SIGTERM with a probe in flight: exit 0 (got {code})")
    check(e.wait_line(r"shutting down") is not None, "SIGTERM: logged")


def engines_threads(binary, tmp):
    """--engines=2: the targets split over two threads, one page, reloads."""
    config = os.path.join(tmp, "engines.yml")
    hosts = [f"127.0.1.{i}" for i in range(1, 11)]
    write_config(config, hosts)
    e = Exporter(binary, ["--config.file=" + config, "--web.listen-address=127.0.0.1:0",
                          "--engines=2"])
    try:
        check(e.wait_listening() is not None, "--engines=2: listening")
        got = wait_for(lambda: (lambda r: r if len(r) == 10 and min(r.values()) >= 3 else None)(
            requests_of(e)), "--engines=2: all 10 targets pinged")
        text = e.get("/metrics")[2]
        heads = [l for l in text.splitlines() if l.startswith("# TYPE smokeping_requests_total")]
        check(got is not None and len(heads) == 1,
              f"--engines=2: one page, each family once ({len(heads)} TYPE lines)")
        threads = samples(text, "icmpengine_exporter_engine_threads").get("", 0)
        check(threads == 2, f"--engines=2: two engine threads ({threads})")
        write_config(config, hosts[:5])
        e.proc.send_signal(signal.SIGHUP)
        check(wait_for(lambda: len(requests_of(e)) == 5, "--engines=2: a reload reaches both "
                       "threads") is not None, "--engines=2: SIGHUP leaves 5 targets")
        check(e.stop(signal.SIGTERM) == 0, "--engines=2: SIGTERM, exit 0")
    finally:
        e.stop(signal.SIGKILL)


def main():
    binary = os.path.abspath(sys.argv[1])
    enter_namespace()
    with tempfile.TemporaryDirectory() as tmp:
        command_line_errors(binary, tmp)
        sockets_refused(binary)
        engines_threads(binary, tmp)
        config = os.path.join(tmp, "config.yml")
        write_config(config, ["127.0.0.1", "127.0.0.2"])
        e = Exporter(binary, ["--config.file=" + config, "--web.listen-address=127.0.0.1:0",
                              "--ping.interval=100ms", "::1"])
        try:
            check(e.wait_listening() is not None, f"start-up: listening on {e.address}")
            if e.address:
                address_in_use(binary, e)
                continuous_and_reload(e, config)
                probes_and_page(e)
                shutdown_with_probe_in_flight(e)
        finally:
            e.stop(signal.SIGKILL)
    print(f"lifecycle: {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
