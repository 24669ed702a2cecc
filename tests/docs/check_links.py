#!/usr/bin/env python3
"""Every link in the documentation resolves (issue 12).

Reads README.md and docs/*.md under ROOT (or the Markdown files given with
--files) and checks every inline link and image, `[text](target)` and
`![alt](target)`, and every reference definition, `[label]: target`, outside
code blocks and code spans:

  - a relative target must name an existing file or directory, resolved from
    the directory of the file that links to it; with an anchor
    (`docs/cli.md#app-run`, or `#quick-start` in the same file) the target
    must be a Markdown file holding a heading with that anchor, as GitHub
    derives it (lowercased, punctuation dropped, spaces to '-', repeated
    headings numbered -1, -2, ...);
  - an absolute http(s) target is only checked for its syntax (a host, no
    spaces): the test runs without a network;
  - a target with another scheme (mailto:, chrome://, ...) is refused: the
    documentation links to files and web pages only.

Usage: check_links.py ROOT [--files FILE...]
Exit status: 0 every link resolves; 1 some do not (listed as FILE:LINE:
message); 2 nothing was checked (no Markdown file, or no link in them: the
check would prove nothing).
"""

import argparse
import glob
import os
import re
import sys
import urllib.parse

FENCE = re.compile(r"^\s{0,3}(```+|~~~+)")
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
# [text](target "title") and ![alt](target); text may hold one level of
# brackets ([`x`][y] is not used here). The target stops at whitespace or ')'.
INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"")


def slug(heading):
    """GitHub's anchor for a heading's text."""
    text = re.sub(r"<[^>]+>", "", heading)  # inline HTML
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links keep their text
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)  # punctuation (backquotes too) goes
    return text.replace(" ", "-")


def strip_code_spans(line):
    return CODE_SPAN.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), line)


def prose_lines(path):
    """(line number, text) of the lines outside fenced code blocks."""
    fence = None
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            m = FENCE.match(line)
            if fence:
                if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
                    fence = None
                continue
            if m:
                fence = m.group(1)
                continue
            yield n, line.rstrip("\n")


_anchor_cache = {}


def anchors(path):
    """The anchors of a Markdown file's headings (and explicit <a name>)."""
    path = os.path.realpath(path)
    if path not in _anchor_cache:
        seen = {}
        found = set()
        for _, line in prose_lines(path):
            for name in HTML_ANCHOR.findall(line):
                found.add(name)
            m = HEADING.match(line)
            if not m:
                continue
            base = slug(m.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
        _anchor_cache[path] = found
    return _anchor_cache[path]


def paragraphs(path):
    """(first line number, text) of each run of non-blank prose lines: a
    code span may continue on the next line of its paragraph."""
    block, first, last = [], 0, -1
    for n, line in prose_lines(path):
        if not line.strip() or n != last + 1:
            if block:
                yield first, "\n".join(block)
            block = []
        if line.strip():
            if not block:
                first = n
            block.append(line)
        last = n
    if block:
        yield first, "\n".join(block)


def links(path):
    """(line number, target) of every link in the file's prose."""
    for first, text in paragraphs(path):
        for i, line in enumerate(text.split("\n")):
            m = REFERENCE.match(line)
            if m:
                yield first + i, m.group(1)
        prose = strip_code_spans(text)
        for m in INLINE.finditer(prose):
            yield first + prose.count("\n", 0, m.start()), m.group(1)


def check_web(target):
    try:
        host = urllib.parse.urlsplit(target).hostname
    except ValueError:
        host = None
    if not host or any(c.isspace() for c in target) or ("." not in host and host != "localhost"):
        return f"malformed web link '{target}'"
    return None


def check_relative(source, target):
    path_part, _, anchor = target.partition("#")
    path_part = urllib.parse.unquote(path_part)
    if path_part:
        resolved = os.path.normpath(os.path.join(os.path.dirname(source), path_part))
    else:
        resolved = source
    if not os.path.exists(resolved):
        return f"broken link '{target}': {os.path.relpath(resolved)} does not exist"
    if not anchor:
        return None
    if not resolved.endswith(".md") or os.path.isdir(resolved):
        if re.fullmatch(r"L\d+(-L\d+)?", anchor):
            return None  # a line of a source file, as GitHub shows it
        return f"broken link '{target}': an anchor into {os.path.relpath(resolved)}, not a Markdown file"
    if anchor not in anchors(resolved):
        known = ", ".join(sorted(anchors(resolved))[:8])
        return (f"broken link '{target}': {os.path.relpath(resolved)} has no heading "
                f"with anchor '#{anchor}' (some it has: {known})")
    return None


def check_file(path):
    problems, count = [], 0
    for n, target in links(path):
        count += 1
        scheme = urllib.parse.urlsplit(target).scheme
        if not target:
            why = "an empty link target"
        elif scheme in ("http", "https"):
            why = check_web(target)
        elif scheme:
            why = f"link '{target}' has scheme '{scheme}:': only files and http(s) pages are linked"
        else:
            why = check_relative(path, target)
        if why:
            problems.append(f"{os.path.relpath(path)}:{n}: {why}")
    return problems, count


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", help="the repository (README.md and docs/*.md are checked)")
    parser.add_argument("--files", nargs="+", help="check these Markdown files instead")
    args = parser.parse_args()

    os.chdir(args.root)
    files = args.files or (glob.glob("README.md") + sorted(glob.glob("docs/*.md")))
    files = [os.path.abspath(f) for f in files]
    if not files:
        print(f"check_links: no Markdown file under {args.root}", file=sys.stderr)
        return 2
    problems, total = [], 0
    for f in files:
        p, n = check_file(f)
        problems += p
        total += n
    if total == 0:
        print("check_links: no link found: the check would prove nothing", file=sys.stderr)
        return 2
    for p in problems:
        print(p)
    if problems:
        print(f"check_links: {len(problems)} of {total} links in {len(files)} files do not resolve",
              file=sys.stderr)
        return 1
    print(f"check_links: all {total} links in {len(files)} files resolve")
    return 0


if __name__ == "__main__":
    sys.exit(main())
