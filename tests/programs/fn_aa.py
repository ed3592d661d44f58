# graph_has_cycle: edges uDDvDD; 1 iff the cycle rank E - V + C exceeds max(1, E // 6)
import re

EDGE = re.compile(r"u(\d\d)v(\d\d)")


def cycle_rank(edges):
    vertices = {v for edge in edges for v in edge}
    leader = {v: v for v in vertices}

    def find(v):
        while leader[v] != v:
            v = leader[v]
        return v

    components = len(vertices)
    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            leader[ra] = rb
            components -= 1
    return len(edges) - len(vertices) + components


def f(x):
    edges = EDGE.findall(x)
    return int(cycle_rank(edges) > max(1, len(edges) // 6))
