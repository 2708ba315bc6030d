# SPDX-License-Identifier: MIT
"""Scenario r of prometheus_test.py: the README's Prometheus configurations
for the exporter, taken from README.md as they are written, run against
exporters started as the README says (two shards in continuous mode on
127.0.0.1:9374 and :9375, two probe-mode exporters on :9376 and :9377)."""

import os
import re

import promharness as ph
from scenarios import LOOPBACK, P_PORT, stop_all

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "README.md")


def readme_blocks():
    """The ```yaml blocks of README.md's "The Prometheus exporter" section."""
    text = open(README, encoding="utf-8").read()
    start = text.index("## The Prometheus exporter")
    section = text[start:text.index("\n## ", start + 1)]
    return re.findall(r"```yaml\n(.*?)```", section, re.S)


def readme_configs(subj, ck, work, _promtool_clean):
    """r: the README's two Prometheus configurations, as written"""
    blocks = readme_blocks()
    ck.check(len(blocks) == 2, f"README: two Prometheus configurations ({len(blocks)} found)")
    shards = [subj.start(f"shard {k}/2", 9374 + k, LOOPBACK, [f"--shard={k}/2"]) for k in (0, 1)]
    prom = None
    try:
        prom = ph.prometheus(os.path.join(work, "continuous"), P_PORT, None, raw_yaml=blocks[0])
        sel = 'smokeping_requests_total{job="smokeping"}'
        prom.wait_for("every host scraped", sel, lambda r: len(r) == len(LOOPBACK))
        per_ip = prom.query_by(f"count by (ip) ({sel})", "ip")
        ck.check(set(per_ip) == set(LOOPBACK) and set(per_ip.values()) == {1},
                 f"README continuous config: {len(per_ip)} hosts, each in one shard")
    finally:
        stop_all(subj, ck, prom, shards)
    targets = re.findall(r'"([0-9a-f.:]+)"', re.search(r"targets: \[(.*?)\]", blocks[1]).group(1))
    probers = [subj.start(f"prober {k}", 9376 + k, [], []) for k in (0, 1)]
    prom = None
    try:
        prom = ph.prometheus(os.path.join(work, "probe"), P_PORT, None, raw_yaml=blocks[1],
                             interval="2s")
        sel = 'probe_success{job=~"icmp_probe_.*"}'
        prom.wait_for("every target probed", sel, lambda r: len(r) == len(targets))
        ok = prom.query_by(sel, "instance")
        jobs = prom.query_by(f"count by (instance) ({sel})", "instance")
        ck.check(set(ok) == set(targets) and set(ok.values()) == {1} and set(jobs.values()) == {1},
                 f"README probe config: probe_success 1 for {sorted(ok)}, each by one exporter")
    finally:
        stop_all(subj, ck, prom, probers)
