#!/usr/bin/python3
"""The hashtags example (examples/hashtags/hashtags.cc) written with Dask: top
hashtags per event-time window over a JSON-lines file of posts.

    /usr/bin/python3 bench/peers/dask_hashtags.py --event '{"input": "posts.jsonl", "window_s": 60}'

A dask.bag of the file's lines (read_text, in blocks), each parsed with
json.loads into (window, hashtags); frequencies() of the windows and of the
(window, tag) pairs; then the top tags of each window, ranked here. The
definitions are the example's (examples/hashtags/hashtags_kernel.h): a post's
hashtags are its "hashtags" array if it has one (strings, one leading '#'
dropped, ASCII-lowercased), otherwise every '#' in "text" followed by
[A-Za-z0-9_]+, ASCII-lowercased; its window is floor(ts / window_s). Unlike
the app it does not check that the input is ordered by window.

Cluster: LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
dashboard_address=None). Prints one JSON line with the app's answer fields
("posts", "hashtags", "distinct", "windows"), "seconds" (the computation,
once the cluster is up) and "cluster_seconds" (starting the cluster).
"""

import json
import math
import re
import sys

import dask_common

TAG = re.compile(r"#([A-Za-z0-9_]+)")
ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def parse(line, window_s):
    """(window, [tags]) of one JSON line."""
    post = json.loads(line)
    ts = post["ts"]
    if isinstance(ts, bool) or not isinstance(ts, (int, float)):
        raise ValueError(f"not a post with a numeric \"ts\": {line[:120]}")
    window = ts // window_s if isinstance(ts, int) else math.floor(ts / window_s)
    array = post.get("hashtags")
    if isinstance(array, list):
        tags = []
        for t in array:
            if not isinstance(t, str):
                continue
            if t.startswith("#"):
                t = t[1:]
            if t:
                tags.append(t.translate(ASCII_LOWER))
    else:
        text = post.get("text")
        tags = [t.translate(ASCII_LOWER) for t in TAG.findall(text)] if isinstance(text, str) else []
    return window, tags


BLOCKSIZE = "64MiB"  # dask.bag.read_text's block: one task per block


def run(client, event):
    if "input" not in event:
        sys.exit("dask_hashtags.py: the event needs \"input\" (write one with "
                 "hashtags_baseline --event '{\"posts\": N, \"write\": FILE}')")
    window_s = max(1, int(event.get("window_s", 10)))
    top = max(0, int(event.get("top", 5)))

    import dask
    import dask.bag as db

    lines = db.read_text(event["input"], blocksize=BLOCKSIZE)
    posts = lines.filter(lambda l: l.strip(" \t\r\n")).map(parse, window_s)
    window_posts = posts.pluck(0).frequencies()
    window_tags = posts.map(lambda p: [(p[0], t) for t in p[1]]).flatten().frequencies()
    posts_per_window, tag_counts = dask.compute(window_posts, window_tags)

    by_window = {}
    for (w, tag), n in tag_counts:
        by_window.setdefault(w, []).append((tag, n))
    windows = []
    for w, n_posts in sorted(posts_per_window):
        rows = by_window.get(w, [])
        rows.sort(key=lambda r: (-r[1], r[0].encode()))
        windows.append({"window": w, "start": w * window_s, "posts": n_posts,
                        "hashtags": sum(n for _, n in rows), "distinct": len(rows),
                        "top": [[t, n] for t, n in rows[:top]]})
    return {
        "posts": sum(n for _, n in posts_per_window),
        "hashtags": sum(n for _, n in tag_counts),
        "distinct": len({tag for (_, tag), _ in tag_counts}),
        "windows": windows,
    }


if __name__ == "__main__":
    dask_common.main(run, __doc__)
