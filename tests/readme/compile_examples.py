#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Compiles and links every ```cpp block of README.md, so no example rots.

Usage: compile_examples.py README.md OUTDIR [--skip TEXT] -- COMPILER [ARG...]
Each block must be a whole program (includes and main). Every block is
written to OUTDIR/readme_example_N.cpp and built with
`COMPILER ARG... -o OUTDIR/readme_example_N OUTDIR/readme_example_N.cpp`
(the caller passes the include path, the library and its dependencies).
A block containing TEXT (--skip: a header this build lacks, such as
icmpengine/asio.hpp without Asio) is left out, and reported so. Prints
each block's first line and result; exits 1 if any fails, or if the
README has no cpp block at all.
"""
import pathlib
import re
import subprocess
import sys


def main() -> int:
    args = sys.argv[1:]
    if len(args) < 4 or "--" not in args:
        print(__doc__, file=sys.stderr)
        return 2
    split = args.index("--")
    readme, outdir = pathlib.Path(args[0]), pathlib.Path(args[1])
    skip = args[args.index("--skip") + 1] if "--skip" in args[:split] else None
    compiler = args[split + 1:]
    blocks = re.findall(r"^```cpp\n(.*?)^```", readme.read_text(), re.S | re.M)
    if not blocks:
        print(f"{readme}: no ```cpp block", file=sys.stderr)
        return 1
    outdir.mkdir(parents=True, exist_ok=True)
    failed = 0
    for n, block in enumerate(blocks, 1):
        first = block.strip().splitlines()[0]
        if skip and skip in block:
            print(f"skip example {n} ({first}): this build has no {skip}")
            continue
        source = outdir / f"readme_example_{n}.cpp"
        source.write_text(block)
        first = block.strip().splitlines()[0]
        # Sources before the libraries: the linker resolves left to right.
        cmd = [compiler[0], str(source), "-o", str(outdir / f"readme_example_{n}")] + compiler[1:]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            failed += 1
            print(f"FAIL example {n} ({first}):\n{result.stderr}")
        else:
            print(f"ok   example {n} ({first})")
    print(f"{len(blocks) - failed} of {len(blocks)} README examples compile and link")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
