#!/usr/bin/env python3
"""Checks the size and contract rules of DESIGN/STYLE for C sources.

- no function longer than MAX_FUNC lines (tables are data, not functions);
- every static function longer than STATIC_CONTRACT lines has a comment
  right above its definition;
- every exported function has a comment above its declaration in a header
  (a group of declarations under one comment counts) or above its
  definition;
- no source file in pkg/ longer than MAX_FILE lines.

Usage: hack/check-contracts.py [DIR...]   (default: pkg cmd). Exit 1 on any
finding, with file:line: lines.
"""
import os
import re
import sys

MAX_FUNC = 80
STATIC_CONTRACT = 20
MAX_FILE = 1000

SIG = re.compile(r'^(static\s+)?(?:inline\s+)?[A-Za-z_][\w\s\*]*?\b([A-Za-z_]\w*)\s*\(')


def sources(dirs):
    for d in dirs:
        for root, _, files in os.walk(d):
            for f in sorted(files):
                if f.endswith(('.c', '.h')):
                    yield os.path.join(root, f)


def comment_above(lines, i):
    """True when the lines above line i (skipping a declaration group)
    end in a comment."""
    j = i - 1
    while j >= 0:
        s = lines[j].strip()
        if not s:
            return False
        if s.endswith('*/') or s.startswith('//'):
            return True
        # Part of the same declaration group (another prototype or a
        # continuation line): keep walking up.
        if s.endswith((';', ',', '(')) or lines[j].startswith((' ', '\t')) or SIG.match(lines[j]):
            j -= 1
            continue
        return False
    return False


def functions(path, lines):
    """(name, is_static, start, end) of each definition in a .c file."""
    out = []
    i = 0
    n = len(lines)
    while i < n:
        line = lines[i]
        m = SIG.match(line)
        if m and not line.rstrip().endswith(';') and not line.startswith(('typedef', 'extern')):
            # Find the opening brace at column 0 within the next lines.
            j = i
            while j < n and not lines[j].startswith('{') and not lines[j].rstrip().endswith(';'):
                if j > i + 8:
                    break
                j += 1
            if j < n and lines[j].startswith('{'):
                k = j + 1
                while k < n and not lines[k].startswith('}'):
                    k += 1
                out.append((m.group(2), bool(m.group(1)), i, k))
                i = k + 1
                continue
        i += 1
    return out


def main():
    dirs = sys.argv[1:] or ['pkg', 'cmd']
    files = list(sources(dirs))
    texts = {p: open(p, encoding='utf-8', errors='replace').read().split('\n') for p in files}
    declared = {}
    for p, lines in texts.items():
        if not p.endswith('.h'):
            continue
        for i, line in enumerate(lines):
            m = SIG.match(line)
            if m and not m.group(1):
                declared.setdefault(m.group(2), []).append((p, i))
    findings = []
    for p, lines in texts.items():
        if p.startswith('pkg') and p.endswith('.c') and len(lines) > MAX_FILE + 1:
            findings.append(f'{p}:1: file has {len(lines) - 1} lines (at most {MAX_FILE})')
        if not p.endswith('.c'):
            continue
        for name, static, start, end in functions(p, texts[p]):
            length = end - start + 1
            if length > MAX_FUNC:
                findings.append(f'{p}:{start + 1}: {name}() has {length} lines (at most {MAX_FUNC})')
            if static:
                if length > STATIC_CONTRACT and not comment_above(lines, start):
                    findings.append(f'{p}:{start + 1}: static {name}() has {length} lines and no '
                                    'contract comment above it')
            elif name != 'main':
                ok = comment_above(lines, start) or any(
                    comment_above(texts[h], i) for h, i in declared.get(name, []))
                if not ok:
                    findings.append(f'{p}:{start + 1}: exported {name}() has no contract comment '
                                    '(above its declaration or definition)')
    for f in findings:
        print(f)
    print(f'check-contracts: {len(findings)} finding(s) in {len(files)} files')
    return 1 if findings else 0


if __name__ == '__main__':
    sys.exit(main())
