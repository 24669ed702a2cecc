#!/usr/bin/env python3
"""Every public name in include/kappa/ has a doc comment (issue 11).

Parses <kappa/kappa.h> with libclang (Debian's python3-clang-16) and reports,
as FILE:LINE, every declaration located in include/kappa/ that a user can
name and that has no doc comment (`///` or `/** */`) of its own or on another
declaration of the same entity:

  - classes, structs, enums and their constants, functions and function
    templates, type aliases, variables and using-declarations, in any
    namespace except `detail` (internals) and anonymous ones;
  - their public members: nested types, fields, member functions,
    constructors, destructors; deleted functions are exempt (they cannot be
    called: `= delete` is their contract);
  - every macro defined in include/kappa/ (detail/ included: a macro has no
    namespace), whose `#define` line must follow a `///` line, since libclang
    attaches no comments to macros.

Plain `//` comments do not count: they are not attached to declarations
without -fparse-all-comments, which this check leaves off on purpose.

Usage: check_api_docs.py INCLUDE_DIR [--isystem DIR[:DIR...]]...
Exit status: 0 all documented, 1 some are not (listed), 2 the headers did
not parse or nothing was found (the check would prove nothing).
"""

import argparse
import os
import sys

try:
    import clang.cindex as ci
except ImportError:
    print("check_api_docs: no libclang bindings: install python3-clang-16 (scripts/setup.sh) "
          "and run this with /usr/bin/python3", file=sys.stderr)
    sys.exit(2)

# Debian's python3-clang-16 otherwise loads whichever libclang.so is the
# default, possibly of another version than its bindings.
LIBCLANG = "/usr/lib/llvm-16/lib/libclang.so.1"

# The compiler's own system directories: naming them with -isystem moves them
# ahead of libstdc++'s, whose #include_next <stdlib.h> then fails (CMake drops
# them from include flags for the same reason).
IMPLICIT_DIRS = {"/usr/include", "/usr/local/include"}

K = ci.CursorKind
CHECKED = {
    K.CLASS_DECL, K.STRUCT_DECL, K.UNION_DECL, K.CLASS_TEMPLATE,
    K.CLASS_TEMPLATE_PARTIAL_SPECIALIZATION, K.ENUM_DECL, K.ENUM_CONSTANT_DECL,
    K.FUNCTION_DECL, K.FUNCTION_TEMPLATE, K.CXX_METHOD, K.CONSTRUCTOR, K.DESTRUCTOR,
    K.CONVERSION_FUNCTION, K.FIELD_DECL, K.VAR_DECL, K.TYPEDEF_DECL, K.TYPE_ALIAS_DECL,
    K.TYPE_ALIAS_TEMPLATE_DECL, K.USING_DECLARATION,
}
RECORDS = {
    K.CLASS_DECL, K.STRUCT_DECL, K.UNION_DECL, K.CLASS_TEMPLATE,
    K.CLASS_TEMPLATE_PARTIAL_SPECIALIZATION,
}
# Syntax, not names: base classes, access labels, template parameters, attributes.
IGNORED = {
    K.CXX_BASE_SPECIFIER, K.CXX_ACCESS_SPEC_DECL, K.TEMPLATE_TYPE_PARAMETER,
    K.TEMPLATE_NON_TYPE_PARAMETER, K.TEMPLATE_TEMPLATE_PARAMETER, K.INCLUSION_DIRECTIVE,
    K.STATIC_ASSERT, K.FRIEND_DECL, K.MACRO_INSTANTIATION,
}


def kind_of(cursor):
    """The cursor's kind, or None for kinds newer than these bindings (a
    concept, say): such a declaration is checked too."""
    try:
        return cursor.kind
    except ValueError:
        return None


def documented(cursor):
    comment = cursor.raw_comment  # of any redeclaration
    return bool(comment and comment.strip("/*! \t\r\n"))


def is_deleted(cursor, kind):
    return kind in (K.CXX_METHOD, K.CONSTRUCTOR) and cursor.is_deleted_method()


class Checker:
    def __init__(self, include_dir):
        self.project = os.path.dirname(os.path.realpath(include_dir))
        self.root = os.path.realpath(os.path.join(include_dir, "kappa")) + os.sep
        self.missing = []  # (file, line, what)
        self.checked = []  # (file, line, what)

    def ours(self, cursor):
        f = cursor.location.file
        return f is not None and os.path.realpath(f.name).startswith(self.root)

    def where(self, cursor):
        path = os.path.relpath(os.path.realpath(cursor.location.file.name), self.project)
        return path, cursor.location.line

    def check(self, cursor, kind, scope):
        name = "::".join(scope + [cursor.spelling or "(unnamed)"])
        entry = (*self.where(cursor), f"{kind.name.lower() if kind else 'declaration'} {name}")
        self.checked.append(entry)
        if not documented(cursor):
            self.missing.append(entry)

    def walk(self, parent, scope, in_record):
        for cursor in parent.get_children():
            kind = kind_of(cursor)
            if kind == K.NAMESPACE:
                if cursor.spelling and cursor.spelling != "detail":
                    self.walk(cursor, scope + [cursor.spelling], False)
                continue
            if kind == K.LINKAGE_SPEC:
                self.walk(cursor, scope, False)
                continue
            if kind in IGNORED or not self.ours(cursor):
                continue
            if kind == K.MACRO_DEFINITION:
                self.check_macro(cursor)
                continue
            if in_record and cursor.access_specifier != ci.AccessSpecifier.PUBLIC:
                continue
            if kind in RECORDS and not cursor.is_definition():
                continue  # a forward declaration: its definition is checked
            if is_deleted(cursor, kind):
                continue
            if kind is None or kind in CHECKED:
                self.check(cursor, kind, scope)
            if kind in RECORDS or kind == K.ENUM_DECL:
                self.walk(cursor, scope + [cursor.spelling], kind in RECORDS)

    def check_macro(self, cursor):
        entry = (*self.where(cursor), f"macro {cursor.spelling}")
        self.checked.append(entry)
        with open(cursor.location.file.name, encoding="utf-8") as f:
            lines = f.read().splitlines()
        above = lines[cursor.location.line - 2].strip() if cursor.location.line >= 2 else ""
        if not (above.startswith("///") and above.strip("/ \t")):
            self.missing.append(entry)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("include_dir", help="the directory holding kappa/kappa.h")
    parser.add_argument("--isystem", action="append", default=[],
                        help="system include directories, ':'-separated (nlohmann, cereal)")
    parser.add_argument("--list", action="store_true", help="also list every name checked")
    args = parser.parse_args()

    flags = ["-x", "c++", "-std=c++20", "-I" + args.include_dir]
    for group in args.isystem:
        for d in group.split(":"):
            if d and os.path.realpath(d) not in IMPLICIT_DIRS:
                flags.append("-isystem" + d)

    ci.Config.set_library_file(LIBCLANG)
    tu = ci.Index.create().parse(
        "api_docs_check.cc", args=flags,
        unsaved_files=[("api_docs_check.cc", "#include <kappa/kappa.h>\n")],
        options=(ci.TranslationUnit.PARSE_DETAILED_PROCESSING_RECORD
                 | ci.TranslationUnit.PARSE_SKIP_FUNCTION_BODIES))
    errors = [d for d in tu.diagnostics if d.severity >= ci.Diagnostic.Error]
    for d in errors:
        print(f"error: {d}", file=sys.stderr)
    if errors:
        print("check_api_docs: <kappa/kappa.h> does not parse with " + " ".join(flags),
              file=sys.stderr)
        return 2

    checker = Checker(args.include_dir)
    checker.walk(tu.cursor, [], False)
    if args.list:
        for path, line, what in checker.checked:
            print(f"{path}:{line}: {what}")
    if not checker.checked:
        print(f"check_api_docs: no declaration found in {checker.root}", file=sys.stderr)
        return 2
    for path, line, what in sorted(set(checker.missing)):
        print(f"{path}:{line}: {what} has no doc comment (///) stating its contract")
    if checker.missing:
        print(f"check_api_docs: {len(set(checker.missing))} of {len(checker.checked)} public "
              "declarations undocumented", file=sys.stderr)
        return 1
    print(f"check_api_docs: all {len(checker.checked)} public declarations in {checker.root} "
          "have a doc comment")
    return 0


if __name__ == "__main__":
    sys.exit(main())
