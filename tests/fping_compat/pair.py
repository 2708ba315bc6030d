# SPDX-License-Identifier: MIT
"""fping_compat's inner side, inside the case's namespace: the command with
Debian's fping first on PATH, then (after a marker ping when simulated) with
ours; run.py --inner SPEC RESULT calls inner()."""

import json
import os
import signal
import socket
import struct
import subprocess
import threading
import time

from table import HERE

MARKER = "198.18.255.1"  # in the simulator's prefix, never in a case


def marker_ping():
    """One echo request to MARKER, so that netsim's records show where the
    first run's requests end."""
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    header = struct.pack("!BBHHH", 8, 0, 0, 0xF1, 0xF1)
    payload = b"fping_compat marker"
    data = header + payload
    padded = data + b"\0" * (len(data) % 2)
    total = sum(struct.unpack(f"!{len(padded) // 2}H", padded))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    data = header[:2] + struct.pack("!H", ~total & 0xFFFF) + header[4:] + payload
    s.sendto(data, (MARKER, 0))
    s.close()


def run_one(argv, bindir, spec):
    """Runs `fping ARGS` with bindir first on PATH; returns what it did."""
    env = dict(os.environ, PATH=bindir + ":" + os.environ.get("PATH", "/usr/bin:/bin"),
               LC_ALL="C")
    stdin = subprocess.DEVNULL
    if spec.get("stdin"):
        stdin = open(os.path.join(HERE, "files", spec["stdin"]), "rb")
    start = time.monotonic()
    p = subprocess.Popen(["fping"] + argv, stdin=stdin, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env)
    lines = {"out": [], "err": []}
    cond = threading.Condition()

    def reader(name, stream):
        for line in iter(stream.readline, b""):
            with cond:
                lines[name].append(line)
                cond.notify_all()
        with cond:
            lines[name].append(None)  # end of stream
            cond.notify_all()

    threads = [threading.Thread(target=reader, args=(n, s))
               for n, s in (("out", p.stdout), ("err", p.stderr))]
    for t in threads:
        t.start()
    deadline = start + spec["timeout"]
    timed_out = False
    if spec.get("sigint"):
        stream, _, n = spec["sigint"].rpartition(":")
        stream, n = stream or "out", int(n)
        with cond:
            # The order comes from the output: SIGINT only once N lines are out.
            while (len([x for x in lines[stream] if x is not None]) < n
                   and None not in lines[stream] and time.monotonic() < deadline):
                cond.wait(timeout=1.0)
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    try:
        rc = p.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        timed_out = True
        p.kill()
        rc = p.wait()
    elapsed = time.monotonic() - start
    for t in threads:
        t.join()
    if stdin is not subprocess.DEVNULL:
        stdin.close()
    joined = {k: b"".join(x for x in v if x is not None) for k, v in lines.items()}
    return {"out": joined["out"].decode("utf-8", "backslashreplace"),
            "err": joined["err"].decode("utf-8", "backslashreplace"),
            "rc": rc, "elapsed_ms": elapsed * 1000.0, "timed_out": timed_out}


def inner(spec_path, result_path):
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    # No name lookup may leave: resolv.conf points at loopback, where nothing
    # answers on port 53 (the namespace's own lo).
    subprocess.run(["mount", "--bind", spec["resolv_conf"], "/etc/resolv.conf"], check=True)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    with open("/proc/sys/net/ipv4/ping_group_range", "w") as f:
        f.write("0 2147483647")
    results = {}
    if not spec.get("ours_only"):
        results["fping"] = run_one(spec["args"], spec["bin_fping"], spec)
    if spec["sim"]:
        marker_ping()
    results["ours"] = run_one(spec["args"], spec["bin_ours"], spec)
    with open(result_path, "w", encoding="utf-8") as f:
        json.dump(results, f)
    return 0
