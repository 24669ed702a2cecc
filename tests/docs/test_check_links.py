#!/usr/bin/env python3
"""check_links.py finds broken links and accepts good ones (issue 12).

Each test writes a small documentation tree in a temporary directory, runs
the checker on it as ctest does, and looks at its exit status and output.
"""

import os
import subprocess
import sys
import tempfile
import textwrap
import unittest

CHECKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "check_links.py")


class CheckLinks(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="kappa-links-")
        self.root = self.tmp.name
        os.makedirs(os.path.join(self.root, "docs"))
        os.makedirs(os.path.join(self.root, "src"))
        self.write("src/main.cc", "int main() {}\n")
        self.write("docs/guide.md", """\
            # The guide

            ## Running `APP run`

            ## Stores, journals & data

            ## Notes
            ## Notes
            """)

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, name, text):
        with open(os.path.join(self.root, name), "w", encoding="utf-8") as f:
            f.write(textwrap.dedent(text))

    def check(self):
        p = subprocess.run([sys.executable, CHECKER, self.root], capture_output=True, text=True)
        return p.returncode, p.stdout + p.stderr

    def test_good_links_pass(self):
        self.write("README.md", """\
            # Title

            See [the guide](docs/guide.md), [a run](docs/guide.md#running-app-run),
            [stores](docs/guide.md#stores-journals--data), [the second notes](docs/guide.md#notes-1),
            [the source](src/main.cc), [a line](src/main.cc#L1), [a folder](src/),
            [here](#title) and [the web](https://example.com/a?b=c#d).

            [ref]: docs/guide.md#notes
            """)
        rc, out = self.check()
        self.assertEqual(rc, 0, out)
        self.assertIn("all 10 links", out)

    def test_missing_file_fails(self):
        self.write("README.md", "See [the guide](docs/gide.md).\n")
        rc, out = self.check()
        self.assertEqual(rc, 1, out)
        self.assertIn("README.md:1: broken link 'docs/gide.md'", out)

    def test_missing_anchor_fails(self):
        self.write("README.md", "# Title\n\nSee [x](docs/guide.md#running) and [y](#titel).\n")
        rc, out = self.check()
        self.assertEqual(rc, 1, out)
        self.assertIn("has no heading with anchor '#running'", out)
        self.assertIn("has no heading with anchor '#titel'", out)

    def test_links_from_docs_resolve_from_their_folder(self):
        self.write("README.md", "[g](docs/guide.md)\n")
        self.write("docs/other.md", "[up](../README.md) [wrong](docs/guide.md)\n")
        rc, out = self.check()
        self.assertEqual(rc, 1, out)
        self.assertIn("docs/other.md:1: broken link 'docs/guide.md'", out)
        self.assertNotIn("'../README.md'", out)

    def test_malformed_web_link_and_other_schemes_fail(self):
        self.write("README.md", "[a](https:///nohost) [b](chrome://tracing)\n")
        rc, out = self.check()
        self.assertEqual(rc, 1, out)
        self.assertIn("malformed web link 'https:///nohost'", out)
        self.assertIn("has scheme 'chrome:'", out)

    def test_code_is_not_checked(self):
        self.write("README.md", """\
            [g](docs/guide.md) and `[x](missing.md)` in a span that
            goes on `over [y](missing.md)
            two lines` then.

            ```md
            [z](missing.md)
            ```
            """)
        rc, out = self.check()
        self.assertEqual(rc, 0, out)
        self.assertIn("all 1 links", out)

    def test_line_numbers_after_a_multiline_span(self):
        self.write("README.md", "`a\nb` text\n[bad](nothere.md)\n")
        rc, out = self.check()
        self.assertIn("README.md:3: broken link 'nothere.md'", out)

    def test_no_links_proves_nothing(self):
        self.write("README.md", "No links here.\n")
        os.remove(os.path.join(self.root, "docs/guide.md"))
        rc, out = self.check()
        self.assertEqual(rc, 2, out)


if __name__ == "__main__":
    unittest.main()
