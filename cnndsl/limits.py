"""Every bound a spec is checked against, in one place (docs/robustness.md gives the reasoning).

A spec is text that people download, paste and review. Whatever that text holds, `cnndsl check` must
finish in seconds and bounded memory and say what it stopped at: each limit below is reported as a
located diagnostic with its own code, never as a crash, a hang or an exhausted machine. The defaults are
far above any published network (ResNet-152 expands to 515 layers, YOLOv4's Darknet file is 30 kB) and
a person can reach each of them within seconds on a laptop; `--max-layers` raises the one a real
network might meet.
"""

from __future__ import annotations

from dataclasses import dataclass

# Python's int is unbounded; sizes, counts and arguments beyond a signed 64-bit integer fit no tensor
# library and no machine, and printing a 4,300-digit number is itself an error in Python. Literals past
# it are E103, computed values past it E208; floats must be finite.
MAX_INTEGER = 2**63 - 1


@dataclass(frozen=True)
class Limits:
    # E001: a spec or imported file larger than this is not read (1 MB parses in about 3 s).
    spec_bytes: int = 1_000_000
    # E104: tokens in one file (names, numbers, operators): ResNet-152's spec has about 700, and Lark parses
    # some 150,000 a second here, so a file at the limit parses in about a second.
    tokens: int = 150_000
    # E102: depth of the parse tree: parentheses, operators, `if` inside `if`. Python recursion over a
    # deeper tree would overflow its stack; 200 is ten times the deepest bundled spec.
    nesting: int = 200
    # E210: block calls and `if` bodies open at one time while expanding (a chain of blocks each calling
    # the next).
    expansion_depth: int = 100
    # E210: layers after expansion (ResNet-1001 has about 3,000; 10,000 check in about 2 s). Expansion
    # steps (layers and block instances) are bounded at twice this, so that a block that adds no layer
    # (`block id() { return in }`) repeated a billion times still stops in seconds.
    layers: int = 10_000
    # Errors reported before checking stops (a file of 20,000 mistakes needs its first ones fixed first).
    errors: int = 100
    # Diagnostics kept for one source line (20,000 extra arguments on one line printed 1.8 GB).
    per_line: int = 10
    # Warnings and notes kept of one code (10,000 unused tensors are one habit, not 10,000 findings).
    per_code: int = 50
    # Characters of a source line quoted under a diagnostic, around the column it points at.
    quoted_line: int = 120
    # E705: elements of one weight an imported file may declare (an ONNX initializer whose dims claim
    # 10^12 floats would be allocated before anything else is checked); 2^31 is eight times VGG-16's largest.
    imported_weight_elements: int = 2**31
    # Names compared for a did-you-mean hint (difflib is quadratic in name length, linear in names).
    suggestion_candidates: int = 2_000


DEFAULT_LIMITS = Limits()
