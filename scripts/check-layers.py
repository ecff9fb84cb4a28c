#!/usr/bin/python3
"""Fail when the modules of egressd call each other in a circle, or a
folder calls up into a folder above it (docs/ARCHITECTURE.md, "Rules").

usage: check-layers.py BUILDDIR

A module is one object file of libegressd.a and the programs (src/*/X.o);
module A calls module B when A has an undefined symbol that B defines
(`nm`).  The folders are layered, lowest first:

    core < procmgr < ops < worker < master, ctl

and a module may call modules of its own folder or of lower ones.  Within
a folder, the calls must form no circle (A calls B and B, through any
chain, calls A).  Prints every violation and exits 1; exits 0 with one
summary line otherwise.
"""
import os
import subprocess
import sys

LAYERS = {"core": 0, "procmgr": 1, "ops": 2, "worker": 3, "master": 4,
          "ctl": 4}


def objects(builddir):
    found = []
    for folder in LAYERS:
        d = os.path.join(builddir, "src", folder)
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            # tests_egressd_next-X.o: the same sources built again for
            # the upgrade tests (Makefile.am), not modules of their own
            if name.endswith(".o") and not name.startswith("tests_"):
                found.append(os.path.join(d, name))
    return found


def module_name(path):
    folder = os.path.basename(os.path.dirname(path))
    return folder + "/" + os.path.basename(path)[:-2]


def symbols(path):
    out = subprocess.run(["nm", "--defined-only", "-g", path],
                         capture_output=True, text=True, check=True).stdout
    defined = {line.split()[-1] for line in out.splitlines() if line.strip()}
    out = subprocess.run(["nm", "--undefined-only", "-g", path],
                         capture_output=True, text=True, check=True).stdout
    undefined = {line.split()[-1] for line in out.splitlines()
                 if line.strip()}
    return defined, undefined


def call_graph(paths):
    owner, needs = {}, {}
    for p in paths:
        mod = module_name(p)
        defined, undefined = symbols(p)
        for s in defined:
            owner[s] = mod
        needs[mod] = undefined
    graph = {}
    for mod, undefined in needs.items():
        graph[mod] = sorted({owner[s] for s in undefined
                             if s in owner and owner[s] != mod})
    return graph


def circles(graph):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
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
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().split("\n\n")[1])
    paths = objects(sys.argv[1])
    if not paths:
        sys.exit(f"check-layers: no objects under {sys.argv[1]}/src")
    graph = call_graph(paths)
    problems = []
    for mod, callees in sorted(graph.items()):
        for c in callees:
            if LAYERS[c.split("/")[0]] > LAYERS[mod.split("/")[0]]:
                problems.append(f"{mod} calls up into {c}")
    for comp in circles(graph):
        edges = [f"{a} -> {b}" for a in comp for b in graph[a] if b in comp]
        problems.append("circle: " + ", ".join(edges))
    for p in problems:
        print("check-layers: " + p)
    calls = sum(len(v) for v in graph.values())
    print(f"check-layers: {len(graph)} modules, {calls} calls between "
          f"them, {len(problems)} violations")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
