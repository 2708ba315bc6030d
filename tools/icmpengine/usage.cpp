// SPDX-License-Identifier: MIT
#include "usage.hpp"

#include <fmt/format.h>

#ifndef ICMPENGINE_VERSION
#error "the build defines ICMPENGINE_VERSION (tools/meson.build)"
#endif

namespace icmpengine_cli {

namespace {

/// The fping release whose options and output the tool follows.
constexpr const char* fping_version = "5.5";

// The option lines keep fping's shape, "   -S, --src=IP": scripts probe
// `fping -h` for options (SmokePing's FPing probe matches /\s-S[,\s]/ and
// /\s-O[,\s]/ before it passes -S or -O).
constexpr const char* probing_options = R"(
Probing options:
   -4, --ipv4         only ping IPv4 addresses
   -6, --ipv6         only ping IPv6 addresses
   -b, --size=BYTES   amount of ping data to send, in bytes (default: 56)
   -B, --backoff=N    set exponential backoff factor to N (default: 1.5)
   -c, --count=N      count mode: send N pings to each target and report stats
   -f, --file=FILE    read list of targets from a file ( - means stdin)
   -g, --generate     generate target list (only if no -f specified),
                      limited to --max-targets targets
                      (give start and end IP in the target list, or a CIDR address)
                      (ex. {0} -g 192.168.1.0 192.168.1.255 or {0} -g 192.168.1.0/24)
   -H, --ttl=N        set the IP TTL value (Time To Live hops)
   -i, --interval=MSEC  interval between sending ping packets (default: 10 ms)
   -I, --iface=IFACE  bind to a particular interface
       --oiface=IFACE  send pings via a specific outgoing interface (not supported)
   -k, --fwmark=FWMARK set the routing mark
   -l, --loop         loop mode: send pings forever
   -m, --all          use all IPs of provided hostnames (e.g. IPv4 and IPv6), use with -A
   -M, --dontfrag     set the Don't Fragment flag
   -O, --tos=N        set the type of service (tos) flag on the ICMP packets
   -p, --period=MSEC  interval between ping packets to one target (in ms)
                      (in loop and count modes, default: 1000 ms)
   -r, --retry=N      number of retries (default: 3)
   -R, --random       random packet data (to foil link data compression)
   -S, --src=IP       set source address
       --seqmap-timeout=MSEC sequence number mapping timeout (no effect here)
   -t, --timeout=MSEC individual target initial timeout (default: 500 ms,
                      except with -l/-c/-C, where it's the -p period up to 2000 ms)
       --check-source discard replies not from target address (not supported)
       --icmp-timestamp use ICMP Timestamp instead of ICMP Echo (not supported)
)";

constexpr const char* output_options = R"(
Output options:
   -a, --alive        show targets that are alive
   -A, --addr         show targets by address
   -C, --vcount=N     same as -c, report results (not stats) in verbose format
   -d, --rdns         show targets by name (force reverse-DNS lookup)
   -D, --timestamp    print timestamp before each output line
       --timestamp-format=FORMAT  show timestamp in the given format (-D required): ctime|iso|rfc3339
   -e, --elapsed      show elapsed time on return packets
   -J, --json         output in JSON format (-c, -C, or -l required)
   -n, --name         show targets by name (reverse-DNS lookup for target IPs)
   -N, --netdata      output compatible for netdata (-l -Q are required)
   -o, --outage       show the accumulated outage time (lost packets * packet interval)
   -q, --quiet        quiet (don't show per-target/per-ping results)
   -Q, --squiet=SECS[,cumulative]  same as -q, but add interval summary every SECS seconds,
                                   with 'cumulative', print stats since beginning
   -s, --stats        print final stats
   -u, --unreach      show targets that are unreachable
   -v, --version      show version
   -x, --reachable=N  shows if >=N hosts are reachable or not
   -X, --fast-reachable=N exits true immediately when N hosts are found
       --print-tos    show received TOS value
       --print-ttl    show IP TTL value
       --print-srcaddr show used IP source address (IPv6 is currently not supported).
)";

constexpr const char* own_options = R"(
icmpengine's own options (none changes anything unless given):
       --rate=PPS     at most PPS pings per second across targets (instead of -i)
       --dscp=N       DSCP 0..63 (IPv4 TOS / IPv6 traffic class; instead of -O)
       --max-targets=N  most addresses -g may expand to (default: 1048576)
       --json-lines   icmpengine's JSON Lines on stdout (icmpengine.schema.json)
       --extended-summary  add stddev, out-of-order, duplicates and ICMP errors
                      to the -c/-C/-l summary lines
MSEC values also take a unit: 250ms, 1.5s, 100us. Manual: icmpengine(1).
)";

} // namespace

void print_usage(std::FILE* out, const std::string& program) {
    fmt::print(out, "Usage: {} [options] [targets...]\n", program);
    fmt::print(out, fmt::runtime(probing_options), program);
    fmt::print(out, "{}", output_options);
    fmt::print(out, "{}", own_options);
}

void print_version(std::FILE* out, const std::string& program) {
    if (program == "icmpengine") {
        fmt::print(out, "icmpengine: Version {}\n", ICMPENGINE_VERSION);
        fmt::print(out, "icmpengine: the options and output of fping {}\n", fping_version);
        return;
    }
    // Version parsers read the first line: "fping: Version (\d+\.\d+)"
    // (faucet's check, fping's own tests) or "[Vv]ersion\s+(\d+(\.\d+)+)".
    // Our name is on a line of its own, as fping 4's "comments to" line was,
    // so that nothing parses "5.5 (icmpengine ...)" as the version.
    fmt::print(out, "{}: Version {}\n", program, fping_version);
    fmt::print(out, "{}: icmpengine {}, an fping-compatible pinger over io_uring\n", program,
               ICMPENGINE_VERSION);
}

} // namespace icmpengine_cli
