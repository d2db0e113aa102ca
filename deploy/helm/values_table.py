#!/usr/bin/env python3
"""Prints the Markdown table of the chart's values from the comments of values.yaml: a key with
a comment above it is a row (its default and the comment); a key without one is a group whose
keys are listed. README "## Deploy" holds the output between the values-table markers, and
tests/helm/helm_test.py checks it is current.

usage: deploy/helm/values_table.py [VALUES_YAML]
"""
import json
import pathlib
import re
import sys

import yaml

KEY = re.compile(r"^( *)([A-Za-z0-9_]+):")


def rows(path):
    """(dotted key, default, description) of every commented key, in file order."""
    text = pathlib.Path(path).read_text()
    values = yaml.safe_load(text)
    out, stack, comment, skip_below = [], [], [], None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            comment.append(stripped.lstrip("#").strip())
            continue
        m = KEY.match(line)
        if not stripped or not m:
            comment = []
            continue
        indent = len(m.group(1))
        stack = [(i, k) for i, k in stack if i < indent] + [(indent, m.group(2))]
        if skip_below is not None and indent > skip_below:
            comment = []
            continue
        skip_below = None
        keys = [k for _, k in stack]
        if comment:
            value = values
            for k in keys:
                value = value[k]
            out.append((".".join(keys), default(value), " ".join(comment)))
            skip_below = indent
        comment = []
    return out


def default(value):
    shown = json.dumps(value, separators=(", ", ": "))
    return f"`{shown}`" if len(shown) <= 40 else "see values.yaml"


def table(path):
    lines = ["| value | default | meaning |", "|---|---|---|"]
    for key, dflt, text in rows(path):
        cell = text.replace("|", "\\|")
        lines.append(f"| `{key}` | {dflt} | {cell} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    here = pathlib.Path(__file__).resolve().parent
    sys.stdout.write(table(sys.argv[1] if len(sys.argv) > 1 else here / "s3canary/values.yaml"))
