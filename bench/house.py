"""How the exported code of the notebooks is laid out: lines and definitions per exported cell, the longest functions.

    python bench/house.py            # every notebook in nbs/
    python bench/house.py nbs/07_training.ipynb

Reads the notebooks as JSON and parses each `#| export` cell with `ast`; runs nothing."""
import ast, json, statistics, sys
from pathlib import Path

def exported_cells(nb_path):
    "The source of each `#| export` / `#| exports` cell of a notebook."
    nb = json.loads(Path(nb_path).read_text())
    for c in nb['cells']:
        s = ''.join(c['source'])
        if c['cell_type'] == 'code' and any(l.strip() in ('#| export', '#| exports') for l in s.splitlines()): yield s

def _defs(tree):
    "Top-level definitions of a cell: functions, classes and assigned names."
    out = []
    for n in tree.body:
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)): out.append(n)
        elif isinstance(n, (ast.Assign, ast.AnnAssign)): out.append(n)
    return out

def _functions(tree):
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]

def _q(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else 0

def house(paths):
    lines, defs, funcs = [], [], []
    for p in paths:
        for s in exported_cells(p):
            t = ast.parse(s)
            lines.append(sum(1 for l in s.splitlines() if l.strip() and not l.lstrip().startswith('#')))
            defs.append(len(_defs(t)))
            funcs += [(n.end_lineno - n.lineno + 1, f'{Path(p).stem}:{n.name}') for n in _functions(t)]
    return lines, defs, sorted(funcs, reverse=True)

if __name__ == '__main__':
    paths = sys.argv[1:] or sorted(str(p) for p in Path('nbs').glob('*.ipynb'))
    lines, defs, funcs = house(paths)
    print(f'{len(paths)} notebooks, {len(lines)} exported cells, {len(funcs)} functions')
    print(f'lines of code per exported cell: median {statistics.median(lines)}, p90 {_q(lines, .9)}, max {max(lines)}')
    print(f'definitions per exported cell: median {statistics.median(defs)}, p90 {_q(defs, .9)}, max {max(defs)}')
    print('longest functions (lines): ' + ', '.join(f'{n} {name}' for n, name in funcs[:5]))
