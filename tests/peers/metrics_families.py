#!/usr/bin/env python3
"""Parses a Prometheus text exposition from stdin with the official client library
(`prometheus_client`, not ours) and prints one JSON line: {family: {"type", "help",
"samples"}}. A document the library refuses makes this exit non-zero.

Run by crates/convene/tests/operations.rs.
"""
import sys

from prometheus_client.parser import text_string_to_metric_families

from common import emit

families = {
    family.name: {"type": family.type, "help": family.documentation, "samples": len(family.samples)}
    for family in text_string_to_metric_families(sys.stdin.read())
}
emit(families)
