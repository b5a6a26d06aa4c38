#!/usr/bin/env python3
"""Module graph of the edge crate: `crate::`/`super::` edges per module, the import cycles, and
the edges that break the layer rule written at the top of src/lib.rs.

    python3 scripts/module-graph.py [src] [-v]     (-v also prints every module's edges)
"""
import os
import re
import sys

# Layer of each top-level module (src/lib.rs): a module may use only lower layers, or its own
# pillar.
LAYERS = {"platform": 0, "store": 1, "pipeline": 2, "gateway": 3, "scheduling": 3, "live": 3,
          "api": 4, "routes": 5}

args = [a for a in sys.argv[1:] if not a.startswith("-")]
root = args[0] if args else "src"
mods = {}
for d, _, fs in os.walk(root):
    for f in fs:
        if f.endswith(".rs"):
            p = os.path.join(d, f)
            rel = os.path.relpath(p, root)[:-3].split(os.sep)
            if rel[-1] == "mod":
                rel = rel[:-1]
            if rel == ["lib"]:
                rel = []
            mods[tuple(rel)] = p


def strip(src):
    """Drops comments and string contents, which may mention paths."""
    src = re.sub(r"//[^\n]*", "", src)
    return re.sub(r'"(\\.|[^"\\])*"', '""', src)


def resolve(path):
    """The longest module prefix of a path."""
    for n in range(len(path), 0, -1):
        if tuple(path[:n]) in mods:
            return tuple(path[:n])
    return None


def split_tree(t):
    depth, cur, parts = 0, "", []
    for ch in t:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    return parts + ([cur] if cur else [])


def expand(prefix, t):
    """Paths named by a `use` tree."""
    m = re.match(r"^([\w:]*?)(?:::)?\{(.*)\}$", t)
    if not m:
        return [prefix + [s for s in t.split("::") if s]]
    pre = prefix + [s for s in m.group(1).split("::") if s]
    return [path for part in split_tree(m.group(2)) for path in expand(pre, part)]


edges = {}
for m, p in mods.items():
    src = strip(open(p).read())
    here = set()

    def absolute(segs):
        if segs[0] == "crate":
            return segs[1:]
        out, i = list(m), 0  # `self`: this module; each `super` goes one up
        while i < len(segs) and segs[i] in ("super", "self"):
            if segs[i] == "super":
                out = out[:-1]
            i += 1
        return out + segs[i:]

    # child modules are in scope by name
    aliases = {c[-1]: c for c in mods if len(c) == len(m) + 1 and c[:len(m)] == m}
    for u in re.finditer(r"\buse\s+((?:crate|super|self)[^;]*);", src, re.S):
        for segs in expand([], re.sub(r"\s+", "", u.group(1))):
            if segs[-1] == "self":
                segs = segs[:-1]
            a = absolute(segs)
            if tuple(a) in mods:
                aliases[segs[-1]] = tuple(a)
            here.add(resolve(a))
    for q in re.finditer(r"\b((?:crate|super)(?:::\w+)+)", src):
        here.add(resolve(absolute(q.group(1).split("::"))))
    for q in re.finditer(r"(?<![\w:])(\w+)::(\w+)", src):
        if q.group(1) in aliases:
            here.add(resolve(list(aliases[q.group(1)]) + [q.group(2)]))
    # lib.rs only declares and wires the modules
    edges[m] = set() if m == () else {e for e in here if e is not None and e != m}


def name(m):
    return "::".join(m) or "lib"


index, low, stack, on, sccs = {}, {}, [], set(), []
sys.setrecursionlimit(10000)


def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on.add(v)
    for w in edges[v]:
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop()
            on.discard(w)
            comp.append(w)
            if w == v:
                break
        sccs.append(comp)


for v in sorted(edges):
    if v not in index:
        visit(v)

if "-v" in sys.argv:
    for m in sorted(edges):
        print(f"{name(m)} -> {', '.join(sorted(name(x) for x in edges[m]))}")
cycles = [s for s in sccs if len(s) > 1]
print(f"modules: {len(mods) - 1}  in cycles: {sum(len(s) for s in cycles)}  cycles: {len(cycles)}")
for s in cycles:
    print("  cycle:", " ".join(sorted(name(x) for x in s)))
against = []
for m in sorted(edges):
    for t in sorted(edges[m]):
        a, b = (m[:1] or ("lib",))[0], t[0]
        if a in LAYERS and b in LAYERS and a != b and LAYERS[b] >= LAYERS[a]:
            against.append(f"  {name(m)} -> {name(t)}")
print(f"edges against the layer rule: {len(against)}")
print("\n".join(against)) if against else None
