#!/usr/bin/python3
"""Parallel grep written with Dask: the peer of examples/grep (the Kappa app)
and bench/baselines/grep_baseline.cc, for the same event.

    /usr/bin/python3 bench/peers/dask_grep.py --event '{"paths": ["logs/"], "pattern": "time(out)?"}'

Event fields as the app's: "paths", "pattern", "fixed", "ignore_case",
"chunk_mb" (or "chunk_bytes"), "max_lines". dask.bytes.read_bytes cuts each
file into blocks of about chunk_mb that end at a newline (Dask handles the
boundaries itself); one task per block finds its matching lines and counts
its newlines, and the client numbers the lines with a running count per file.

Matching uses Python's `re` on bytes (the app uses RE2 on UTF-8): the answers
are identical for literals and for the regexes both read alike (ASCII
classes, alternations, anchors, repetition), not for every regex.

Prints one JSON line with the answer fields of the app ("matching_lines",
"lines", "crc32"), "files", "chunks", "seconds" (the computation, cluster
start excluded) and "cluster_seconds".
"""

import os
import re
import zlib

import dask_common


def list_files(paths):
    """Every regular file the paths name, a folder's in path order."""
    files = []
    for path in paths:
        if os.path.isfile(path):
            found = [path]
        elif os.path.isdir(path):
            found = [os.path.join(d, f) for d, _, names in os.walk(path) for f in names
                     if os.path.isfile(os.path.join(d, f))]
            found.sort(key=lambda p: p.split(os.sep))
        else:
            raise SystemExit(f"no such file or directory: {path}")
        for f in found:
            f = os.path.normpath(f)
            if f not in files:
                files.append(f)
    return files


def grep_block(block, pattern, fixed, ignore_case):
    """(newlines in the block, [(line index in the block, line)])."""
    if not block:
        return 0, []
    lines = block.split(b"\n")
    if block.endswith(b"\n"):
        lines.pop()
    if fixed and not ignore_case:
        hits = [(i, line) for i, line in enumerate(lines) if pattern in line]
    else:
        rx = re.compile(re.escape(pattern) if fixed else pattern,
                        re.IGNORECASE if ignore_case else 0)
        hits = [(i, line) for i, line in enumerate(lines) if rx.search(line)]
    return block.count(b"\n"), hits


def run(event):
    import dask
    from dask.bytes import read_bytes

    paths = event["paths"]
    if isinstance(paths, str):
        paths = [paths]
    pattern = event["pattern"].encode()
    fixed = event.get("fixed", False)
    ignore_case = event.get("ignore_case", False)
    chunk = event.get("chunk_bytes") or int(event.get("chunk_mb", 64) * (1 << 20))
    max_lines = event.get("max_lines", 100)

    files = list_files(paths)
    tasks = []  # (file, delayed result) per block, in input order
    for f in files:
        if os.path.getsize(f) == 0:
            continue
        _, blocks = read_bytes(f, delimiter=b"\n", blocksize=chunk, sample=False)
        for b in blocks[0]:
            tasks.append((f, dask.delayed(grep_block)(b, pattern, fixed, ignore_case)))
    results = dask.compute(*[t for _, t in tasks])

    out, lines, count = [], [], 0
    before = {}  # newlines so far, per file
    for (f, _), (newlines, hits) in zip(tasks, results):
        start = before.get(f, 0)
        prefix = f.encode()
        for i, text in hits:
            line = prefix + b":" + str(start + i + 1).encode() + b":" + text
            if count < max_lines:
                lines.append(line.decode("utf-8", "replace"))
            out.append(line + b"\n")
            count += 1
        before[f] = start + newlines
    text = b"".join(out)
    return {"matching_lines": count, "lines": lines, "crc32": zlib.crc32(text),
            "files": len(files), "chunks": len(tasks)}


if __name__ == "__main__":
    dask_common.main(lambda client, event: run(event), __doc__)
