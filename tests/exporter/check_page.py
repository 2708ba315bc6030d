#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The status page as a browser sees it: headless Chromium loads the page
(a file written by exporter_page_sample, or a URL) and this fails on any
console message Chromium logs for it, or if the DOM it built lacks the
expected number of <svg> graphs. --screenshot also saves a PNG
(docs/exporter-status.png is one).

Chromium runs in a private, empty network namespace (`unshare -n`, loopback
up) with its background networking off and a temporary profile: it cannot
touch any network. Without the privilege for that, or without chromium,
the check skips (exit 77); under CI=true that is a failure.

The detector is checked first: a page whose script logs an error must
produce the console line this looks for, or the check fails.

  check_page.py --sample BUILD/tests/exporter_page_sample [--svgs 10]
  check_page.py --url http://127.0.0.1:9374/ --svgs N --no-netns
  check_page.py --sample ... --screenshot docs/exporter-status.png
"""
import argparse
import html.parser
import os
import re
import shutil
import subprocess
import sys
import tempfile

SKIP = 77
IN_CI = os.environ.get("CI") == "true"

# Chromium logs a page's console messages (with --enable-logging=stderr) as
#   [pid:tid:MMDD/HHMMSS.uuuuuu:INFO:CONSOLE:7] "message", source: URL (7)
# (Chromium 156; older ones wrote CONSOLE(7)), whatever the message's level;
# uncaught exceptions read "Uncaught ...". Loading failures and CSP
# refusals come the same way.
CONSOLE_LINE = re.compile(r":CONSOLE[:(]\d+\)?\]|Uncaught |Refused to |Failed to load resource")


def skip(reason):
    print(f"SKIP: {reason}" + (" (CI=true: a skip is a failure)" if IN_CI else ""))
    sys.exit(1 if IN_CI else SKIP)


def fail(reason):
    print(f"FAIL: {reason}")
    sys.exit(1)


class TagBalance(html.parser.HTMLParser):
    """Every element the page opens it closes, in order (Chromium repairs
    markup silently; this does not)."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
            "track", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack = []
        self.problems = []

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
                                 f" at {self.getpos()}")
        else:
            self.stack.pop()


def well_formed_problems(text):
    if not text.startswith("<!DOCTYPE html>"):
        return ["no <!DOCTYPE html> first"]
    checker = TagBalance()
    checker.feed(text)
    checker.close()
    return checker.problems + [f"<{t}> never closed" for t in checker.stack]


def chromium_command(chromium, profile, extra, url, netns):
    cmd = [chromium, "--headless=new", "--no-sandbox", "--disable-gpu",
           "--enable-logging=stderr", "--v=0", f"--user-data-dir={profile}",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--disable-default-apps", "--no-default-browser-check",
           "--disable-extensions", "--disable-crash-reporter", "--disable-breakpad",
           "--disable-features=MediaRouter,OptimizationHints,Translate",
           "--font-render-hinting=none"] + extra + [url]
    if not netns:
        return cmd
    # An empty namespace with only loopback, up (Chromium wants an interface).
    return ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"] + cmd


def run_chromium(chromium, extra, url, netns):
    with tempfile.TemporaryDirectory(prefix="check_page_profile_") as profile:
        cmd = chromium_command(chromium, profile, extra, url, netns)
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=240,
                               env=dict(os.environ, HOME=profile))
        except subprocess.TimeoutExpired:
            fail("chromium did not finish within 240 s: " + " ".join(cmd))
    return p


def console_lines(stderr):
    return [line for line in stderr.splitlines() if CONSOLE_LINE.search(line)]


def check_detector(chromium, workdir, netns):
    bad = os.path.join(workdir, "bad.html")
    with open(bad, "w", encoding="utf-8") as f:
        f.write('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>bad</title>'
                '</head><body><script>console.error("detector-check");'
                "undefinedFunction();</script></body></html>\n")
    p = run_chromium(chromium, ["--dump-dom"], "file://" + bad, netns)
    if p.returncode != 0 and "Operation not permitted" in p.stderr:
        skip("cannot create a network namespace for chromium (unshare -n): " + p.stderr.strip())
    found = console_lines(p.stderr)
    if not any("detector-check" in line for line in found):
        print(p.stderr)
        fail("the console-error detector saw nothing on a page that logs an error: "
             "chromium's log format changed?")
    print(f"detector: {len(found)} console line(s) on the known-bad page, as expected")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--sample", help="exporter_page_sample: writes the page to load")
    src.add_argument("--url", help="a file:// or http:// URL to load")
    ap.add_argument("--svgs", type=int, default=None,
                    help="expected number of <svg> elements (default: 10 with --sample)")
    ap.add_argument("--screenshot", help="also save a 1280x1800 PNG here")
    ap.add_argument("--no-netns", action="store_true",
                    help="run chromium in the current network namespace (the caller's own)")
    args = ap.parse_args()

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        skip("chromium is not installed (Debian: apt-get install chromium)")
    netns = not args.no_netns
    if netns and shutil.which("unshare") is None:
        skip("unshare (util-linux) is missing")

    with tempfile.TemporaryDirectory(prefix="check_page_") as workdir:
        os.chmod(workdir, 0o755)
        if args.sample:
            page = os.path.join(workdir, "status.html")
            subprocess.run([args.sample, page], check=True)
            url = "file://" + page
            expected = 10 if args.svgs is None else args.svgs
            with open(page, encoding="utf-8") as f:
                problems = well_formed_problems(f.read())
            if problems:
                fail("the page is not well formed:\n  " + "\n  ".join(problems[:20]))
        else:
            url = args.url
            expected = args.svgs
        check_detector(chromium, workdir, netns)

        p = run_chromium(chromium, ["--dump-dom"], url, netns)
        if p.returncode != 0:
            print(p.stderr)
            fail(f"chromium exited with {p.returncode}")
        errors = console_lines(p.stderr)
        if errors:
            fail("console messages while loading the page:\n  " + "\n  ".join(errors))
        dom = p.stdout
        if "</html>" not in dom or "<body" not in dom:
            fail(f"no document in chromium's DOM dump ({len(dom)} bytes)")
        svgs = len(re.findall(r"<svg\b", dom))
        if expected is not None and svgs != expected:
            fail(f"{svgs} <svg> elements in the DOM, expected {expected}")
        if "<script" in dom:
            fail("a <script> element in the DOM")
        print(f"page: {url}: no console messages, {svgs} svg graphs, {len(dom)} bytes of DOM")

        if args.screenshot:
            shot = os.path.abspath(args.screenshot)
            p = run_chromium(chromium, [f"--screenshot={shot}", "--window-size=1280,1800",
                                        "--hide-scrollbars"], url, netns)
            if p.returncode != 0 or not os.path.exists(shot):
                print(p.stderr)
                fail("no screenshot")
            errors = console_lines(p.stderr)
            if errors:
                fail("console messages while taking the screenshot:\n  " + "\n  ".join(errors))
            print(f"screenshot: {shot} ({os.path.getsize(shot)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
