# SPDX-License-Identifier: MIT
"""The scenarios of prometheus_test.py: each starts its exporters and one
Prometheus, checks what Prometheus's HTTP API reports, and stops them all.

Every function takes (subject, checks, workdir, promtool_clean)."""

import time

import promharness as ph

P_PORT = 19090  # Prometheus (the namespace is private: fixed ports are free)
E_PORTS = (19374, 19375)  # the exporters

LOOPBACK = [f"127.0.0.{i}" for i in range(1, 20)] + ["::1"]  # 20 targets
INTERVAL = "100ms"  # 10 pings/s per target: enough samples in seconds
PER_SECOND = 10.0


def values(result, key):
    return {labels.get(key): v for labels, v, _ in result}


def show(d):
    return ", ".join(f"{k}={v:.3g}" for k, v in sorted(d.items()))


def has_all(key, wanted):
    return lambda result: set(wanted) <= set(values(result, key))


def stop_all(subj, ck, prom, exporters):
    if prom is not None:
        prom.stop()
    for e in exporters:
        subj.stop(e, ck)


def continuous(subj, ck, work, promtool_clean):
    """a (+d): continuous mode, 20 loopback targets and a silent one, scraped every second"""
    hosts = LOOPBACK + [ph.SILENT_TARGET]
    exp = subj.start("exporter", E_PORTS[0], hosts, [f"--ping.interval={INTERVAL}"])
    prom = None
    try:
        prom = ph.prometheus(work, P_PORT, [{"job_name": "smokeping",
                                             "static_configs": [{"targets": [exp.url[7:]]}]}])
        continuous_checks(subj, ck, prom, exp, hosts)
        promtool_clean(ck, "/metrics", ph.http_get(exp.url + "/metrics")[1])
    finally:
        stop_all(subj, ck, prom, [exp])


def continuous_checks(subj, ck, prom, exp, hosts):
    req = 'smokeping_requests_total{job="smokeping"}'
    resp = 'smokeping_response_duration_seconds_count{job="smokeping"}'
    prom.wait_for("a rate for every target", f"rate({req}[5s])", has_all("ip", hosts))
    # rate() divides by the whole range: until the series is older than the
    # range it reads low. Wait until every target has 7 samples within 10 s.
    prom.wait_for("7 samples of every target", f"count_over_time({req}[10s]) >= 7",
                  has_all("ip", hosts))
    # The band is not a speed bound: the exporter sends on a 100 ms schedule
    # (21 targets: ~200 pings/s, a few per cent of a core), so the rate is
    # what that schedule makes, and only a wrong schedule (pinging twice per
    # interval, or once per second) stays outside 5..15/s. A stall of the
    # loaded machine can push one 5 s window out of the band, so the check is
    # that the band is reached, under the generous overall bound.
    lo, hi = PER_SECOND / 2, PER_SECOND * 1.5
    rates = prom.wait_for(
        f"every rate in {lo:g}..{hi:g}/s", f"rate({req}[5s])",
        lambda r: has_all("ip", hosts)(r) and all(lo <= v <= hi for _, v, _ in r))
    r = values(rates, "ip")
    ck.check(True, f"rate(smokeping_requests_total[5s]) in {lo:g}..{hi:g}/s for all "
             f"{len(r)} targets: min {min(r.values()):.2f}, max {max(r.values()):.2f}")
    ck.check(len(r) == len(hosts), f"{len(r)} series of smokeping_requests_total "
             f"(want {len(hosts)}, one per target)")
    # p90 of loopback RTTs: microseconds; 0.1 s is a thousand times that.
    q = ("histogram_quantile(0.9, rate(smokeping_response_duration_seconds_bucket"
         '{job="smokeping",ip!="%s"}[10s]))' % ph.SILENT_TARGET)
    p90 = values(prom.wait_for("a p90 for every loopback target", q,
                               lambda res: has_all("ip", LOOPBACK)(res) and
                               all(v == v for _, v, _ in res)), "ip")  # v == v: not NaN
    ck.check(all(v < 0.1 for v in p90.values()),
             f"histogram_quantile(0.9, ...[10s]) < 0.1 s for the {len(p90)} loopback targets: "
             f"max {max(p90.values()) * 1e3:.3f} ms")
    silent = prom.query(f'rate({resp[:-1]},ip="{ph.SILENT_TARGET}"}}[5s])')
    silent_req = prom.query(f'rate({req[:-1]},ip="{ph.SILENT_TARGET}"}}[5s])')
    ck.check(len(silent) == 1 and silent[0][1] == 0,
             f"silent target: response rate {[v for _, v, _ in silent]} (want [0])")
    ck.check(len(silent_req) == 1 and silent_req[0][1] > 0,
             f"silent target: request rate {[round(v, 2) for _, v, _ in silent_req]} (want > 0)")
    resets = prom.query(f"resets({req}[1m]) > 0")
    ck.check(not resets, f"no counter reset in Prometheus over the run ({resets[:2]})")
    samples = compare_with_exporter(ck, prom, exp, req, resp)
    # On the exporter's page: Prometheus drops a label whose value is empty
    # (source="" when no source address is set).
    names = {frozenset(k for k, _ in lb) for n, lb in samples if n == "smokeping_requests_total"}
    if subj.full_labels:
        ck.check(names == {frozenset({"ip", "host", "source", "tos"})},
                 f"labels of smokeping_requests_total: {sorted(sorted(n) for n in names)} "
                 "(want ip, host, source, tos)")
    else:
        print(f"  (smokeping_prober 0.6.1 labels: {sorted(sorted(n) for n in names)})")


def compare_with_exporter(ck, prom, exp, req, resp):
    """Prometheus's last samples against the exporter's /metrics read after
    them: never above, and at most what the schedule sent in between."""
    p_req = {lb["ip"]: (v, t) for lb, v, t in prom.query(req)}
    p_resp = {lb["ip"]: v for lb, v, _ in prom.query(resp)}
    status, text = ph.http_get(exp.url + "/metrics")
    now = time.time()
    samples = ph.parse_exposition(text)
    e_req = ph.series_by(samples, "smokeping_requests_total", "ip")
    e_resp = ph.series_by(samples, "smokeping_response_duration_seconds_count", "ip")
    ck.check(status == 200 and set(e_req) == set(p_req),
             f"exporter's /metrics (HTTP {status}) has the {len(e_req)} targets Prometheus has")
    bad = []
    for ip, (v, t) in sorted(p_req.items()):
        # Between Prometheus's sample (at t) and our read (now) the schedule
        # sends at most (now - t) * 10 pings per target, plus one interval
        # of slack on each side: a lower bound from the code, not a speed bound.
        allowance = (now - t + 1.0) * PER_SECOND * 1.5 + 2
        er, eresp = e_req.get(ip, -1), e_resp.get(ip, -1)
        if not (v <= er <= v + allowance and p_resp.get(ip, 0) <= eresp <= er):
            bad.append(f"{ip}: prometheus {v:g}/{p_resp.get(ip)}, exporter {er:g}/{eresp:g}")
    ck.check(not bad, "requests/responses: Prometheus <= exporter <= Prometheus + what "
             "was sent since, responses <= requests" + (": " + "; ".join(bad[:4]) if bad else
                                                        f" (e.g. 127.0.0.1: prometheus "
                                                        f"{p_req['127.0.0.1'][0]:g}, exporter "
                                                        f"{e_req['127.0.0.1']:g})"))
    answered = [e_resp[ip] / e_req[ip] for ip in LOOPBACK if e_req.get(ip)]
    ck.check(answered and min(answered) >= 0.5,
             f"loopback targets answered: at least {min(answered or [0]) * 100:.1f} % of "
             "pings each (want >= 50 %: loopback answers all; the margin is for timeouts "
             "of a stalled machine)")
    return samples


def probe_job(name, targets, exporter_url, extra_relabel=()):
    """A blackbox-style scrape job: each target becomes ?target=, the
    exporter is the address scraped."""
    return {
        "job_name": name,
        "metrics_path": "/probe",
        # A probe of a silent target lasts count x interval + its timeout:
        # give the scrape room (the exporter sees the scrape timeout).
        "scrape_interval": "2s",
        "scrape_timeout": "2s",
        "params": {"count": ["3"], "interval": ["50ms"]},
        "static_configs": [{"targets": targets}],
        "relabel_configs": [
            {"source_labels": ["__address__"], "target_label": "__param_target"},
            {"source_labels": ["__param_target"], "target_label": "instance"},
            *extra_relabel,
            {"target_label": "__address__", "replacement": exporter_url[7:]},
        ],
    }


def probe(subj, ck, work, promtool_clean):
    """b (+d): probe mode, blackbox-style relabelling over 127.0.0.1, ::1 and a silent target"""
    allow = f"--probe.allow=127.0.0.0/8,::1/128,{ph.SILENT_PREFIX}"
    exp = subj.start("exporter", E_PORTS[0], [], [allow])
    prom = None
    targets = ["127.0.0.1", "::1", ph.SILENT_TARGET]
    try:
        prom = ph.prometheus(work, P_PORT, [probe_job("probe", targets, exp.url)])
        prom.wait_for("probe_success of every target", 'probe_success{job="probe"}',
                      has_all("instance", targets))
        want = {"127.0.0.1": 1, "::1": 1, ph.SILENT_TARGET: 0}
        for metric, expected in [
            ("probe_success", want),
            ("up", {t: 1 for t in targets}),
            ("icmpengine_probe_packets_sent", {t: 3 for t in targets}),
            ("icmpengine_probe_packets_received", {t: 3 * w for t, w in want.items()}),
            ("icmpengine_probe_packet_loss_ratio", {t: 1 - w for t, w in want.items()}),
            ("probe_ip_protocol", {"127.0.0.1": 4, "::1": 6, ph.SILENT_TARGET: 4}),
        ]:
            got = prom.query_by(f'{metric}{{job="probe"}}', "instance")
            ck.check(got == expected, f"{metric}: {show(got)} (want {show(expected)})")
        status, page = ph.http_get(exp.url + "/probe?target=127.0.0.1&count=3&interval=50ms")
        ck.check(status == 200, f"GET /probe?target=127.0.0.1&count=3&interval=50ms: {status}")
        promtool_clean(ck, "/probe", page)
        # Outside the allow-list: refused before any packet (and in this
        # namespace 192.0.2.1 has no route anyway).
        status, body = ph.http_get(exp.url + "/probe?target=192.0.2.1")
        ck.check(status == 403 and "--probe.allow" in body,
                 f"GET /probe?target=192.0.2.1 (not allowed): HTTP {status} "
                 f"{body.strip()[:80]!r} (want 403 naming --probe.allow)")
    finally:
        stop_all(subj, ck, prom, [exp])


def shard_continuous(subj, ck, work, _promtool_clean):
    """c1: --shard 0/2 and --shard 1/2 over the same 20 hosts, one Prometheus"""
    exps = [subj.start(f"exporter shard {k}/2", E_PORTS[k], LOOPBACK,
                       [f"--ping.interval={INTERVAL}", f"--shard={k}/2"]) for k in (0, 1)]
    prom = None
    try:
        prom = ph.prometheus(work, P_PORT, [{
            "job_name": "sharded",
            "static_configs": [{"targets": [e.url[7:] for e in exps]}]}])
        prom.wait_for("both exporters scraped", 'up{job="sharded"} == 1',
                      lambda r: len(r) == 2)
        q = 'count(smokeping_requests_total{job="sharded"})'
        prom.wait_for("20 series", q, lambda r: r and r[0][1] >= len(LOOPBACK))
        count = prom.query(q)[0][1]
        ck.check(count == len(LOOPBACK), f"{q} = {count:g} (want {len(LOOPBACK)})")
        twice = prom.query('count by (host) (smokeping_requests_total{job="sharded"}) > 1')
        ck.check(not twice, f"no host in both shards ({[lb for lb, _, _ in twice][:3]})")
        hosts = prom.query_by('smokeping_requests_total{job="sharded"}', "host")
        ck.check(set(hosts) == set(LOOPBACK), f"every host in one shard ({len(hosts)} hosts)")
        per = prom.query_by('count by (instance) (smokeping_requests_total{job="sharded"})',
                            "instance")
        print(f"  hosts per exporter: {show(per)}")
        own = [set(ph.series_by(ph.parse_exposition(ph.http_get(e.url + "/metrics")[1]),
                                "smokeping_requests_total", "host")) for e in exps]
        ck.check(not (own[0] & own[1]) and own[0] | own[1] == set(LOOPBACK),
                 f"the exporters' own /metrics: {len(own[0])} + {len(own[1])} hosts, disjoint, "
                 "20 in all")
    finally:
        stop_all(subj, ck, prom, exps)


def shard_probe(subj, ck, work, _promtool_clean):
    """c2: two probe-mode exporters, Prometheus hashmod relabelling over __param_target"""
    exps = [subj.start(f"exporter {k}", E_PORTS[k], [], []) for k in (0, 1)]
    prom = None
    try:
        jobs = []
        for k, e in enumerate(exps):
            # The standard pattern: hash the target, keep this exporter's
            # share, label the series with the exporter that probed it.
            jobs.append(probe_job(f"hashmod_{k}", LOOPBACK, e.url, [
                {"source_labels": ["__param_target"], "modulus": 2, "target_label": "__tmp_hash",
                 "action": "hashmod"},
                {"source_labels": ["__tmp_hash"], "regex": str(k), "action": "keep"},
                {"target_label": "exporter", "replacement": str(k)},
            ]))
        prom = ph.prometheus(work, P_PORT, jobs)
        sel = 'probe_success{job=~"hashmod_.*"}'
        prom.wait_for("every target probed", sel, has_all("instance", LOOPBACK))
        by_instance = prom.query_by(f"count by (instance) ({sel})", "instance")
        ck.check(set(by_instance) == set(LOOPBACK) and set(by_instance.values()) == {1},
                 f"count by (instance): {len(by_instance)} targets, each probed by "
                 f"{sorted(set(by_instance.values()))} exporter(s) (want 20, [1])")
        by_exporter = prom.query_by(f"count by (exporter) ({sel})", "exporter")
        ck.check(sum(by_exporter.values()) == len(LOOPBACK) and len(by_exporter) == 2,
                 f"count by (exporter): {show(by_exporter)} (both used, 20 in all)")
        ok = prom.query_by(sel, "instance")
        ck.check(set(ok.values()) == {1}, f"probe_success 1 for all {len(ok)} targets")
        sent = prom.query_by('icmpengine_probe_packets_sent{job=~"hashmod_.*"}', "instance")
        ck.check(set(sent.values()) == {3}, f"icmpengine_probe_packets_sent 3 for all "
                 f"{len(sent)} targets ({sorted(set(sent.values()))})")
    finally:
        stop_all(subj, ck, prom, exps)


SCENARIOS = {"a": continuous, "b": probe, "c1": shard_continuous, "c2": shard_probe}
