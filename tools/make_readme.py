"""Write README.md from nbs/index.ipynb without Quarto (`nbdev_readme` needs Quarto).

    python tools/make_readme.py          # write README.md
    python tools/make_readme.py --check  # exit 1 if README.md is out of date
"""
import re, sys
from pathlib import Path
import nbformat

ROOT = Path(__file__).resolve().parent.parent
HEADER = '<!-- Generated from nbs/index.ipynb by tools/make_readme.py: edit the notebook, not this file. -->\n\n'

def _hidden(src): return bool(re.search(r'^#\|\s*(hide|export|exporti)\b', src, re.M))

def readme_text(nb_path=ROOT/'nbs'/'index.ipynb'):
    nb = nbformat.read(nb_path, as_version=4)
    parts = []
    for c in nb.cells:
        src = c.source.strip()
        if not src: continue
        if c.cell_type == 'markdown': parts.append(re.sub(r'\]\(([\w./-]+\.ipynb)\)', r'](nbs/\1)', src))  # notebook links from the repo root
        elif c.cell_type == 'code' and not _hidden(src):
            code = '\n'.join(l for l in src.splitlines() if not l.startswith('#|'))
            parts.append(f'```python\n{code}\n```')
    return HEADER + '\n\n'.join(parts) + '\n'

if __name__ == '__main__':
    txt, out = readme_text(), ROOT/'README.md'
    if '--check' in sys.argv:
        if not out.exists() or out.read_text() != txt:
            sys.exit('README.md is out of date with nbs/index.ipynb: run `python tools/make_readme.py`')
        print('README.md is in sync with nbs/index.ipynb')
    else:
        out.write_text(txt); print(f'wrote {out.relative_to(ROOT)}')
