#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A stand-in for icmpengine-exporter that pings nothing: it serves pages
shaped like the exporter's (/metrics in continuous mode, /probe), so that
`prometheus_test.py --peer fake` can check the harness's own Prometheus
configurations (relabelling, hashmod, shards) before the real exporter exists.

    fake_exporter.py --web.listen-address=127.0.0.1:PORT [--ping.interval=D]
                     [--shard=K/N] [--probe.allow=...] [HOSTS...]

Counts are made up from the clock: every host "sends" one request per
interval; loopback hosts answer in 100 us, others never.
"""

import argparse
import http.server
import signal
import sys
import threading
import time
import urllib.parse


def seconds(d):
    return float(d[:-2]) / 1e3 if d.endswith("ms") else float(d.rstrip("s"))


def answers(host):
    return host.startswith("127.") or host == "::1"


class handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, text):
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/metrics":
            self.reply(200, self.server.metrics())
        elif url.path == "/probe":
            t = q.get("target", "")
            if not (answers(t) or t.startswith("198.18.99.")):
                self.reply(400, f"target {t!r} is not in --probe.allow\n")
                return
            n = int(q.get("count", "1"))
            ok = answers(t)
            self.reply(200, "".join([
                "# HELP probe_success Whether the probe succeeded.\n# TYPE probe_success gauge\n",
                f"probe_success {int(ok)}\n",
                "# HELP probe_ip_protocol IP protocol of the probe.\n",
                "# TYPE probe_ip_protocol gauge\n",
                f"probe_ip_protocol {6 if ':' in t else 4}\n",
                "# HELP icmpengine_probe_packets_sent Pings sent.\n",
                "# TYPE icmpengine_probe_packets_sent gauge\n",
                f"icmpengine_probe_packets_sent {n}\n",
                "# HELP icmpengine_probe_packets_received Replies received.\n",
                "# TYPE icmpengine_probe_packets_received gauge\n",
                f"icmpengine_probe_packets_received {n if ok else 0}\n",
                "# HELP icmpengine_probe_packet_loss_ratio Lost / sent.\n",
                "# TYPE icmpengine_probe_packet_loss_ratio gauge\n",
                f"icmpengine_probe_packet_loss_ratio {0 if ok else 1}\n"]))
        else:
            self.reply(404, "not found\n")


class server(http.server.ThreadingHTTPServer):
    def metrics(self):
        sent = int((time.monotonic() - self.start) / self.interval)
        out = ["# HELP smokeping_requests_total Requests.\n",
               "# TYPE smokeping_requests_total counter\n"]
        hist = ["# HELP smokeping_response_duration_seconds RTTs.\n",
                "# TYPE smokeping_response_duration_seconds histogram\n"]
        for h in self.hosts:
            labels = f'host="{h}",ip="{h}",source="",tos="0"'
            got = sent if answers(h) else 0
            out.append(f"smokeping_requests_total{{{labels}}} {sent}\n")
            for le in ("0.0001", "0.1", "+Inf"):
                hist.append(f'smokeping_response_duration_seconds_bucket{{{labels},le="{le}"}} '
                            f"{got}\n")
            hist.append(f"smokeping_response_duration_seconds_sum{{{labels}}} {got * 1e-4}\n")
            hist.append(f"smokeping_response_duration_seconds_count{{{labels}}} {got}\n")
        return "".join(out + hist)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--web.listen-address", dest="listen", required=True)
    ap.add_argument("--ping.interval", dest="interval", default="1s")
    ap.add_argument("--shard", default="0/1")
    ap.add_argument("--probe.allow", dest="allow")
    ap.add_argument("hosts", nargs="*")
    o = ap.parse_args()
    k, n = (int(x) for x in o.shard.split("/"))
    host, port = o.listen.rsplit(":", 1)
    srv = server((host, int(port)), handler)
    srv.start = time.monotonic()
    srv.interval = seconds(o.interval)
    srv.hosts = [h for h in o.hosts if sum(h.encode()) % n == k]
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=srv.shutdown).start())
    print(f"icmpengine-exporter: listening on {host}:{port}", file=sys.stderr, flush=True)
    srv.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
