#!/usr/bin/python3
"""Word count with Dask: the Dask version of examples/wordcount (dask_common.py).

A word is a maximal run of ASCII letters, lowercased; the text is read as
latin-1 so that every byte is one character and a non-ASCII byte separates
words, as in the C++ kernel. dask.bag reads the files in blocks of "chunk_mb"
(cut at line ends, so no word is cut), each partition counts into a Counter and
the Counters are summed.

    /usr/bin/python3 bench/peers/dask_wordcount.py --event '{"paths": ["/tmp/text"]}'
"""

import collections
import os
import re

import dask_common

WORD = re.compile(r"[A-Za-z]+")


def count_partition(lines):
    counts = collections.Counter()
    for line in lines:
        counts.update(w.lower() for w in WORD.findall(line))
    return counts


def merge(counters):
    total = collections.Counter()
    for c in counters:
        total.update(c)
    return total


def compute(client, event):
    import dask.bag as db

    files = [f for f in dask_common.list_files(event["paths"]) if os.path.getsize(f) > 0]
    chunk = int(event.get("chunk_mb", 64) * (1 << 20))
    lines = db.read_text(files, blocksize=chunk, encoding="latin-1", linedelimiter="\n")
    counts = lines.reduction(count_partition, merge).compute()
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    top = event.get("top", 10)
    return {"words": sum(counts.values()), "distinct": len(counts),
            "top": [[w, n] for w, n in ranked[:top]]}


if __name__ == "__main__":
    dask_common.main(compute, __doc__)
