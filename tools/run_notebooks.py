"""Execute notebooks in place so that the docs (built from saved outputs) show their results and figures.

    python tools/run_notebooks.py                      # every notebook under nbs/
    python tools/run_notebooks.py nbs/02_discovery.ipynb

Cells flagged `#| gpu` (on a machine without CUDA) and `#| eval: false` are not run, as in `nbdev_test`;
`slow` cells are run. Afterwards run `nbdev_clean`.
"""
import re, sys, time
from pathlib import Path
import nbformat
from nbconvert.preprocessors import ExecutePreprocessor

ROOT = Path(__file__).resolve().parent.parent

def _skip(src, gpu):
    if re.search(r'^#\|\s*eval:\s*false', src, re.M): return True
    return not gpu and bool(re.search(r'^#\|\s*gpu\b', src, re.M))

class _Executor(ExecutePreprocessor):
    "Runs the cells that `nbdev_test --flags slow` would run."
    def __init__(self, gpu, **kw): super().__init__(**kw); self.gpu = gpu
    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == 'code' and _skip(cell.source, self.gpu):
            cell.outputs, cell.execution_count = [], None
            return cell, resources
        return super().preprocess_cell(cell, resources, index)

def run(path, gpu=False):
    nb = nbformat.read(path, as_version=4)
    t = time.time()
    _Executor(gpu, timeout=1800, kernel_name='python3').preprocess(nb, {'metadata': {'path': str(Path(path).parent)}})
    nbformat.write(nb, path)
    print(f'{Path(path).relative_to(ROOT)}: {time.time() - t:.0f} s')

if __name__ == '__main__':
    import torch
    paths = [Path(p).resolve() for p in sys.argv[1:]] or sorted((ROOT/'nbs').rglob('[0-9a-z]*.ipynb'))
    for p in paths: run(p, gpu=torch.cuda.is_available())
