"""Write the rule groups of every PrometheusRule in rendered manifests as Prometheus rule files, for promtool.

Run by scripts/deploy-check.sh with the tools virtualenv:

    extract_rules.py [--drop-annotation NAME ...] OUT_DIR rendered.yaml [...]

A PrometheusRule's spec is a Prometheus rule file ({groups: [...]}); each one found becomes
OUT_DIR/<rendered file's stem>.<object name>.rules.yaml, which `promtool check rules` and `promtool test rules`
read. --drop-annotation leaves an annotation out: `promtool test rules` compares every annotation of a firing
alert, and the tests (deploy/tools/alerts-test.yaml) check the short summaries, not the descriptions' prose.
Prints the files written; exits 1 if there is none (nothing would be checked).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drop-annotation", action="append", default=[], metavar="NAME")
    parser.add_argument("out", type=Path)
    parser.add_argument("files", type=Path, nargs="+")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in args.files:
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if not doc or doc.get("kind") != "PrometheusRule":
                continue
            groups = doc["spec"]["groups"]
            for rule in (rule for group in groups for rule in group.get("rules", [])):
                for name in args.drop_annotation:
                    rule.get("annotations", {}).pop(name, None)
            target = args.out / f"{path.stem}.{doc['metadata']['name']}.rules.yaml"
            target.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False), encoding="utf-8")
            written.append(target)
    if not written:
        print("extract_rules: no PrometheusRule in the rendered files", file=sys.stderr)
        return 1
    for target in written:
        print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
