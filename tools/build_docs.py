"""Build the docs website offline, without Quarto, from the notebooks in nbs/.

    python tools/build_docs.py              # write the site to _docs/ (open _docs/index.html)
    python tools/build_docs.py --sidebar    # also rewrite nbs/sidebar.yml (Quarto's sidebar) from nbs/
    python tools/build_docs.py --no-cache   # process every notebook again (see CACHE)

`nbdev_docs` renders the site with Quarto, which these machines cannot install. This builds the
same site from the same notebooks: each notebook goes through nbdev's own docs processing (the
`FilterDefaults` processors that `nbdev_docs` runs before Quarto: `show_doc` of every exported
symbol, `#| hide`/`#| export` cells dropped, directives stripped, symbols linked), then nbconvert's
`HTMLExporter` renders it with tools/docs_site/page.html.j2. The Quarto markup that survives
nbdev's processing (front matter, `#| echo/output/include/code-fold/fig-cap` options, `:::` divs
and callouts, `{...}` attributes, links to `.ipynb` files) is translated here, the way Quarto would;
TeX math becomes MathML (latex2mathml), which browsers draw without MathJax.

Notebooks are not executed: pages show their saved outputs. (Like `nbdev_docs`, nbdev's
processing runs the exported cells and the import cells, to render `show_doc`.) Pages are ordered
as in the sidebar: index.ipynb (the home page), then the numbered notebooks (section "API"), then one
section per sub-folder (e.g. tutorials/). All links are relative: the site works from file:// and
from any static web server. A notebook that nbdev cannot process fails the build, naming it; a
link to a notebook that is not in the site is reported (tests/test_docs_site.py fails on it). nbdev's processing of a notebook is cached
under build/docs-cache/, keyed on the notebook, the library's sources, settings.ini and versions.
"""
from __future__ import annotations
import argparse, hashlib, json, multiprocessing, os, re, shutil, sys, tempfile, time, warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml

ROOT = Path(__file__).resolve().parent.parent
ASSETS = Path(__file__).resolve().parent/'docs_site'
CACHE = ROOT/'build'/'docs-cache'   # nbdev-processed notebooks, by hash of everything they depend on

# nbconvert -> nbformat -> jsonschema imports the optional IRI-syntax checker rfc3987_syntax when it
# is installed, which compiles a grammar (over a second per process); nbformat never checks IRIs.
sys.modules.setdefault('rfc3987_syntax', None)
API_SECTION = 'API'

# ---------------------------------------------------------------- the pages and their order

@dataclass
class Page:
    "One notebook of the site."
    src: Path            # the notebook
    rel: PurePosixPath   # notebook path relative to nbs/
    out: PurePosixPath   # HTML path relative to the site root
    section: str | None  # sidebar section (None: top level)
    title: str = ''
    description: str = ''

    @property
    def depth(self): return len(self.out.parts) - 1
    @property
    def root(self): return '../' * self.depth   # from this page to the site root


def _numbered(name): return bool(re.match(r'^\d+', name))

def page_html_name(rel) -> PurePosixPath:
    "The page nbdev/Quarto give a notebook: `00_data.ipynb` -> `data.html` (nbdev's `_nbpath2html`)."
    from nbdev.doclinks import _nbpath2html
    return PurePosixPath(_nbpath2html(Path(rel)).as_posix())

def find_pages(nbs: Path) -> list[Page]:
    "The notebooks of the site, in sidebar order: index, numbered (API), other top-level, then each sub-folder."
    from nbdev.doclinks import nbglob
    nbs = Path(nbs)
    files = [Path(f) for f in nbglob(nbs, file_glob='*.ipynb', skip_folder_re=r'(?:^[_.]|^www$)')]
    rels = sorted(PurePosixPath(f.relative_to(nbs).as_posix()) for f in files
                  if '.ipynb_checkpoints' not in f.parts)
    if PurePosixPath('index.ipynb') not in rels:
        raise SystemExit(f'{nbs}/index.ipynb is missing: it is the home page of the site')
    def key(r):
        top = len(r.parts) == 1
        return (not top, r.parts[:-1], r.name != 'index.ipynb', not (top and _numbered(r.name)), r.name)
    pages = []
    for r in sorted(rels, key=key):
        if len(r.parts) > 1: section = r.parts[0].replace('_', ' ').title()
        elif r.name == 'index.ipynb': section = None
        else: section = API_SECTION if _numbered(r.name) else None
        pages.append(Page(nbs/Path(r), r, page_html_name(r), section))
    seen = {}
    for p in pages:
        if p.out in seen: raise SystemExit(f'{p.rel} and {seen[p.out]} would both be written to {p.out}: rename one')
        seen[p.out] = p.rel
    return pages

def sidebar_sections(pages):
    "[(section or None, [pages])] in order, keeping each section together."
    res = []
    for p in pages:
        if res and res[-1][0] == p.section: res[-1][1].append(p)
        else: res.append((p.section, [p]))
    return res

def sidebar_yml(pages) -> str:
    "nbs/sidebar.yml for Quarto (`nbdev_docs`): the same pages, order and sections as the offline site."
    contents = []
    for sec, ps in sidebar_sections(pages):
        items = [{'text': 'Home', 'href': str(p.rel)} if str(p.rel) == 'index.ipynb' else str(p.rel) for p in ps]
        if sec is None: contents += items
        else: contents.append({'section': sec, 'contents': items})
    head = ('# Quarto sidebar of the docs site. Generated from the notebooks in nbs/ by\n'
            '# `python tools/build_docs.py --sidebar`; keep settings.ini `custom_sidebar = True`\n'
            '# so that nbdev_docs uses this file instead of writing its own.\n')
    return head + yaml.safe_dump({'website': {'sidebar': {'contents': contents}}}, sort_keys=False, indent=2)

# ---------------------------------------------------------------- nbdev's processing (in worker processes)

def process_notebook(path: str) -> dict:
    "Run nbdev's docs processors (what `nbdev_docs` feeds Quarto) on one notebook; JSON-able result."
    from execnb.nbio import read_nb, nb2dict
    from nbdev.processors import FilterDefaults
    path, t0 = Path(path).resolve(), time.time()
    os.environ['IN_TEST'] = '1'   # as nbdev's docs processing sets it
    here = os.getcwd()
    os.chdir(path.parent)
    try:
        with warnings.catch_warnings(record=True) as ws:
            warnings.simplefilter('always')
            nb = read_nb(path)
            FilterDefaults()(nb)
    except Exception as e:
        cause = e.__cause__ or e.__context__
        lines = str(e).splitlines()
        msg = '\n'.join(lines[:8] + (['    ...'] if len(lines) > 8 else []))
        first = next((l for l in lines[1:] if l.strip()), None)   # nbdev numbers the processed cells: find the notebook's
        orig = [i for i, c in enumerate(read_nb(path).cells) if first and c.cell_type == 'code' and first in c.source]
        if len(orig) == 1: msg += f'\n    (cell {orig[0] + 1} of the notebook, counting all its cells from 1)'
        if cause is not None: msg += f'\n    {type(cause).__name__}: {cause}'
        if isinstance(cause, NameError):
            msg += ('\n    nbdev runs every exported cell and every cell holding an import to render show_doc '
                    '(nbdev_docs does the same), but not the other cells: keep imports in cells of their own '
                    '(see the nbdev FAQ, "Found cells containing imports and other code").')
        return dict(error=msg)
    finally: os.chdir(here)
    return dict(nb=nb2dict(nb), frontmatter=dict(getattr(nb, 'frontmatter_', None) or {}), seconds=time.time() - t0,
                warnings=[_mixed_cell_warning(str(w.message)) for w in ws if 'imports and other code' in str(w.message)])

def _mixed_cell_warning(msg):
    src = [l for l in msg.split('\n')[1:] if l.strip() and l.strip() != '---']
    return f'a cell mixes imports and other code, which nbdev runs to build the docs: {src[0].strip()[:70] if src else ""!r}...'

def _cache_key(nb: Path) -> str:
    "Hash of what nbdev's processing of `nb` depends on: the notebook, the library, settings, versions."
    from importlib.metadata import version
    from nbdev.config import get_config
    cfg = get_config()
    h = hashlib.sha256(' '.join(version(p) for p in ('nbdev', 'execnb', 'fastcore')).encode())
    import inspect
    h.update(inspect.getsource(process_notebook).encode())
    for f in [nb, cfg.config_file, *sorted(Path(cfg.lib_path).rglob('*.py'))]:
        h.update(str(f).encode()); h.update(f.read_bytes())
    return h.hexdigest()[:32]

def process_all(pages, jobs, cache=True):
    "nbdev-process every page's notebook in `jobs` worker processes (as nbdev_docs does), or take it from the cache."
    keys = [_cache_key(p.src) for p in pages]
    results = [json.loads((CACHE/f'{k}.json').read_text()) if cache and (CACHE/f'{k}.json').exists() else None for k in keys]
    todo = [i for i, r in enumerate(results) if r is None]
    if todo:
        ctx = multiprocessing.get_context('spawn')
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from build_docs import process_notebook   # by module name, so that spawned workers can import it
        with ProcessPoolExecutor(max_workers=max(1, min(jobs, len(todo))), mp_context=ctx) as ex:
            for i, r in zip(todo, ex.map(process_notebook, [str(pages[i].src) for i in todo])): results[i] = r
    if cache:
        CACHE.mkdir(parents=True, exist_ok=True)
        for i in todo:
            if 'error' in results[i]: continue
            tmp = CACHE/f'.{keys[i]}.tmp'
            tmp.write_text(json.dumps(results[i])); tmp.replace(CACHE/f'{keys[i]}.json')
        for f in CACHE.glob('*.json'):
            if f.stem not in keys: f.unlink()
    for i, r in enumerate(results): r['cached'] = i not in todo
    return results

# ---------------------------------------------------------------- Quarto markup -> HTML/markdown

_re_opt = re.compile(r'^#\|\s*([\w.-]+)\s*:\s*(.*?)\s*$')
_re_fence_div = re.compile(r'^(:{3,})\s*(\{[^}]*\}|[\w-]+)?\s*$')
_re_code_fence = re.compile(r'^\s*(```|~~~)')
_ATTRS = r'\{\s*((?:[#.][\w:.-]+|[\w-]+=(?:"[^"]*"|\'[^\']*\'|[^\s}]+))(?:\s+(?:[#.][\w:.-]+|[\w-]+=(?:"[^"]*"|\'[^\']*\'|[^\s}]+)))*)\s*\}'
_re_attr_link = re.compile(r'(!?)\[([^\]\n]*)\]\(([^)\s]+)(?:\s+"([^"]*)")?\)' + _ATTRS)
_re_attr_span = re.compile(r'(?<![\]!\\])\[([^\]\n]+)\]' + _ATTRS)
_re_heading_attr = re.compile(r'^(#{1,6}\s+.*?)\s*' + _ATTRS + r'\s*$')
_re_inline_code = re.compile(r'(`+).+?\1')
_CALLOUTS = ('note', 'tip', 'warning', 'important', 'caution')

def parse_attrs(s):
    "Pandoc attributes `{#id .cls key=val}` -> (id, [classes], {key: val})."
    ident, classes, kv = None, [], {}
    for m in re.finditer(r'''([\w-]+)=(?:"([^"]*)"|'([^']*)'|(\S+))|#([\w:.-]+)|\.([\w-]+)''', s.strip('{} ')):
        if m.group(1): kv[m.group(1)] = next(g for g in m.groups()[1:4] if g is not None)
        elif m.group(5): ident = m.group(5)
        else: classes.append(m.group(6))
    return ident, classes, kv

def _html_attrs(ident, classes, kv):
    from html import escape
    parts = [f'id="{escape(ident)}"'] if ident else []
    if classes: parts.append(f'class="{escape(" ".join(classes))}"')
    parts += [f'{k}="{escape(v)}"' for k, v in kv.items()]
    return (' ' + ' '.join(parts)) if parts else ''

def quarto_md(src: str) -> str:
    "Markdown with Quarto/pandoc extensions -> markdown that mistune renders the way Quarto would."
    out, stack, in_code = [], [], False
    lines = src.split('\n')
    i = 0
    while i < len(lines):
        line = lines[i]; i += 1
        if _re_code_fence.match(line): in_code = not in_code
        if in_code: out.append(line); continue
        m = _re_fence_div.match(line)
        if m:
            attrs = m.group(2)
            if attrs is None and stack:                       # a closing fence
                out += ['', stack.pop(), '']; continue
            ident, classes, kv = parse_attrs(attrs or '')
            if attrs and not attrs.startswith('{'): classes = [attrs]
            kind = next((c.split('-', 1)[1] for c in classes if c.startswith('callout-') and c.split('-', 1)[1] in _CALLOUTS), None)
            if kind:
                title = kv.pop('title', None)
                while i < len(lines) and not lines[i].strip(): i += 1
                if title is None and i < len(lines) and re.match(r'^#{1,6}\s', lines[i]):
                    title = re.sub(r'^#{1,6}\s+', '', lines[i]).strip(); i += 1
                from html import escape
                kv = {k: v for k, v in kv.items() if k not in ('collapse', 'appearance', 'icon')}
                out += ['', f'<div{_html_attrs(ident, ["callout"] + classes, kv)}>',
                        f'<div class="callout-title">{escape(title or kind.title())}</div>', '<div class="callout-body">', '']
                stack.append('</div></div>')
            else:
                out += ['', f'<div{_html_attrs(ident, classes, kv)}>', '']
                stack.append('</div>')
            continue
        line = _outside_code(line, lambda t: _re_attr_span.sub(
            lambda m: f'<span{_html_attrs(*parse_attrs(m.group(2)))}>{m.group(1)}</span>', _re_attr_link.sub(_attr_link, t)))
        h = _re_heading_attr.match(line)
        if h:
            ident, _, _ = parse_attrs(h.group(2))
            line = h.group(1) + (f' <span data-heading-id="{ident}"></span>' if ident else '')
        out.append(line)
    out += [''] + stack[::-1] if stack else []
    return '\n'.join(out)

def _outside_code(line, f):
    "Apply `f` to the parts of a markdown line that are not `inline code`."
    out, pos = [], 0
    for m in _re_inline_code.finditer(line):
        out += [f(line[pos:m.start()]), m.group(0)]; pos = m.end()
    return ''.join(out + [f(line[pos:])])

def _attr_link(m):
    "`[text](url){attrs}` -> <a>, `![alt](src){attrs}` -> <img>."
    from html import escape
    bang, text, url, title, attrs = m.groups()
    ident, classes, kv = parse_attrs(attrs)
    if title: kv['title'] = title
    if bang: return f'<img src="{escape(url)}" alt="{escape(text)}"{_html_attrs(ident, classes, kv)}>'
    import mistune
    inner = mistune.html(text).strip()
    inner = re.sub(r'^<p>(.*)</p>$', r'\1', inner, flags=re.S)
    return f'<a href="{escape(url)}"{_html_attrs(ident, classes, kv)}>{inner}</a>'

def quarto_cells(nb):
    "Apply Quarto's cell options and markdown extensions to nbdev's processed notebook (in place)."
    cells = []
    for cell in nb.cells:
        cell.pop('has_sd', None)
        if cell.cell_type == 'raw':
            if re.match(r'^---\s*\n.*\n---\s*$', cell.source.strip(), re.S): continue   # front matter
            if cell.metadata.get('raw_mimetype', '') in ('', 'text/markdown'): cell.source = quarto_md(cell.source)
        elif cell.cell_type == 'markdown':
            cell.source = quarto_md(cell.source)
        elif cell.cell_type == 'code':
            lines, opts = cell.source.split('\n'), {}
            while lines and lines[0].lstrip().startswith('#|'):
                m = _re_opt.match(lines.pop(0).strip())
                if m:
                    try: opts[m.group(1)] = yaml.safe_load(m.group(2))
                    except yaml.YAMLError: opts[m.group(1)] = m.group(2)
            cell.source = '\n'.join(lines).strip('\n')
            if opts.get('include') is False: continue
            if opts.get('echo') is False or not cell.source.strip():
                cell.metadata.setdefault('transient', {})['remove_source'] = True
            if opts.get('output') is False: cell.outputs = []
            if opts.get('code-fold') not in (None, False):
                cell.metadata['code_fold'] = 'show' if opts['code-fold'] == 'show' else 'hide'
                cell.metadata['code_summary'] = str(opts.get('code-summary', 'Code'))
            if opts.get('fig-cap'): cell.metadata['fig_cap'] = str(opts['fig-cap'])
            for o in cell.outputs:
                md = o.get('data', {}).get('text/markdown')
                if md is not None: o['data']['text/markdown'] = quarto_md(md if isinstance(md, str) else ''.join(md))
            if cell.metadata.get('transient', {}).get('remove_source') and not cell.outputs: continue
        cells.append(cell)
    nb.cells = cells
    return nb

# ---------------------------------------------------------------- HTML

def pandoc_id(text: str) -> str:
    "Pandoc's auto identifier (what Quarto gives headings, and what nbdev's doc links point to)."
    s = ''.join(c for c in text.strip() if c.isalnum() or c in '_-. \n\t')
    s = re.sub(r'\s+', '-', s).lower()
    s = re.sub(r'^[^a-z\u00c0-\uffff]+', '', s)
    return s or 'section'

_re_math = re.compile(r'\$\$(.+?)\$\$|(?<![\\$])\$(?![\s$])([^$\n]+?)(?<![\s\\])\$(?!\d)|(\\begin\{(\w+\*?)\}.+?\\end\{\4\})', re.S)

def render_math(soup, root, problems, where):
    "TeX math that nbconvert's markdown left as `$...$`/`$$...$$` -> MathML (drawn by browsers, no MathJax/CDN)."
    try: from latex2mathml.converter import convert
    except ImportError:
        if any(_re_math.search(t) for t in root.find_all(string=True)):
            problems.append(f'{where}: TeX math left as text: pip install latex2mathml (a dev requirement) to render it')
        return
    from bs4 import BeautifulSoup, NavigableString
    for t in list(root.find_all(string=_re_math)):
        if t.find_parent(['pre', 'code', 'script', 'style', 'math', 'textarea']): continue
        parts, pos = [], 0
        for m in _re_math.finditer(t):
            tex, display = (m.group(1), True) if m.group(1) is not None else (m.group(2), False) if m.group(2) is not None else (m.group(3), True)
            tex = re.sub(r'\\text\{[^{}]*\}', lambda m: m.group(0).replace('\\_', '_'), tex)  # \text{a\_b}: a_b
            try: mathml = convert(tex.strip(), display='block' if display else 'inline')
            except Exception as e:
                problems.append(f'{where}: could not convert the TeX {tex!r} ({type(e).__name__}: {e})'); continue
            parts += [NavigableString(t[pos:m.start()]), *BeautifulSoup(mathml, 'html.parser').contents]
            pos = m.end()
        if not parts: continue
        parts.append(NavigableString(t[pos:]))
        for x in parts: t.insert_before(x)
        t.extract()

def make_exporter():
    from nbconvert import HTMLExporter
    from traitlets.config import Config
    c = Config()
    c.HTMLExporter.extra_template_paths = [str(ASSETS)]
    c.HTMLExporter.template_file = 'page.html.j2'
    c.HTMLExporter.exclude_input_prompt = True
    c.HTMLExporter.exclude_output_prompt = True
    c.HTMLExporter.anchor_link_text = '¶'
    return HTMLExporter(config=c)

def _rel(target: PurePosixPath, page: Page) -> str:
    return page.root + str(target)

def finish_html(html, page, by_nb, site_url, nbs, out_dir, problems):
    "Heading ids as Quarto makes them, links to notebooks and to the online site made relative, TOC, local images."
    from bs4 import BeautifulSoup
    soup = BeautifulSoup(html, 'html.parser')
    main = soup.find('main')
    used = {t['id'] for t in soup.find_all(id=True) if not t.name or t.name not in ('h1','h2','h3','h4','h5','h6')}
    toc = []
    for h in main.find_all(['h1', 'h2', 'h3', 'h4', 'h5', 'h6']):
        if 'title' in (h.get('class') or []): continue
        for a in h.find_all('a', class_='anchor-link'): a.extract()
        marker = h.find('span', attrs={'data-heading-id': True})
        if marker: ident = marker['data-heading-id']; marker.decompose()
        else:
            base = ident = pandoc_id(h.get_text())
            k = 0
            while ident in used: k += 1; ident = f'{base}-{k}'
        used.add(ident)
        h['id'] = ident
        link = soup.new_tag('a', attrs={'class': 'anchor-link', 'href': f'#{ident}', 'aria-label': 'link to this section'})
        link.string = '¶'
        h.append(link)
        if h.name in ('h2', 'h3'): toc.append((h.name, ident, h.get_text().rstrip('¶').strip()))
    src_dir = PurePosixPath(page.rel).parent
    for a in soup.find_all('a', href=True):
        href = a['href']
        if site_url and href.startswith(site_url):
            a['href'] = page.root + (href[len(site_url):].lstrip('/') or 'index.html')
            continue
        if re.match(r'^[a-z][\w+.-]*:', href, re.I) or href.startswith(('#', '/')): continue
        path, _, frag = href.partition('#')
        if not path.endswith('.ipynb'): continue
        target = PurePosixPath(os.path.normpath(str(src_dir/path)))
        if target not in by_nb:
            problems.append(f'{page.rel}: link to {href}, which is not a notebook of the site')
            continue
        a['href'] = _rel(by_nb[target].out, page) + (f'#{frag}' if frag else '')
    for img in soup.find_all('img', src=True):
        src = img['src']
        if re.match(r'^[a-z][\w+.-]*:', src, re.I) or src.startswith('/'): continue
        f = (nbs/Path(str(src_dir))/src).resolve()
        if not f.is_file():
            problems.append(f'{page.rel}: image {src} not found'); continue
        dest = out_dir/Path(str(page.out.parent))/src
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, dest)
    render_math(soup, main, problems, str(page.rel))
    nav = soup.find('nav', id='TOC')
    if toc:
        t = soup.new_tag('h2'); t.string = 'On this page'; nav.append(t)
        ul = soup.new_tag('ul'); nav.append(ul)
        last = None
        for level, ident, text in toc:
            li = soup.new_tag('li'); a = soup.new_tag('a', href=f'#{ident}'); a.string = text; li.append(a)
            if level == 'h3' and last is not None:
                sub = last.find('ul') or last.append(soup.new_tag('ul')) or last.find('ul')
                sub.append(li)
            else:
                ul.append(li)
                if level == 'h2': last = li
    return str(soup)

def render_site(pages, results, out_dir: Path, nbs: Path):
    "Write every page, the CSS and the assets to `out_dir`; returns a list of problems (broken links)."
    import nbformat
    from nbdev.config import get_config
    from pygments.formatters import HtmlFormatter
    cfg = get_config()
    site_url = (cfg.get('doc_host', '').rstrip('/') + '/' + cfg.get('doc_baseurl', '').strip('/')).rstrip('/') + '/'
    site = dict(title=cfg.get('title', cfg.get('lib_name', 'docs')), repo_url=cfg.get('git_url', ''))
    for p, r in zip(pages, results):
        fm = r['frontmatter']
        p.title = str(fm.get('title') or p.rel.stem)
        p.description = str(fm.get('description') or '')
        if fm.get('output-file'): p.out = p.out.parent/str(fm['output-file'])
    by_nb = {p.rel: p for p in pages}
    exporter = make_exporter()
    out_dir.mkdir(parents=True, exist_ok=True)
    css = (ASSETS/'site.css').read_text() + '\n/* code colours: Pygments "default" */\n' + HtmlFormatter(style='default').get_style_defs('.highlight')
    (out_dir/'site.css').write_text(css)
    shutil.copy2(nbs/'styles.css', out_dir/'styles.css') if (nbs/'styles.css').exists() else (out_dir/'styles.css').write_text('')
    problems = []
    for i, (p, r) in enumerate(zip(pages, results)):
        nb = quarto_cells(nbformat.reads(json.dumps(r['nb']), as_version=4))
        nb.metadata.pop('widgets', None)
        sidebar = [dict(section=sec, pages=[dict(text=q.title if q.rel.name != 'index.ipynb' else 'Home',
                                                 href=_rel(q.out, p), active=q is p) for q in ps])
                   for sec, ps in sidebar_sections(pages)]
        navbar = [dict(text='Home', href=_rel(pages[0].out, p), active=p is pages[0])]
        firsts = {}
        for q in pages[1:]: firsts.setdefault(q.section or '', q)
        navbar += [dict(text=sec or 'Pages', href=_rel(q.out, p), active=p.section == q.section) for sec, q in firsts.items()]
        nbr = lambda q: dict(text=q.title, href=_rel(q.out, p)) if q else None
        res = dict(page=dict(title=p.title, description=p.description, root=p.root), site=site,
                   sidebar=sidebar, navbar=navbar, prev=nbr(pages[i-1] if i else None),
                   next=nbr(pages[i+1] if i + 1 < len(pages) else None))
        html, _ = exporter.from_notebook_node(nb, resources=res)
        html = finish_html(html, p, by_nb, site_url, nbs, out_dir, problems)
        dest = out_dir/Path(str(p.out))
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(html, encoding='utf-8')
    (out_dir/'.nojekyll').write_text('')
    return problems

# ---------------------------------------------------------------- the command

def build(nbs=None, out=None, jobs=None, cache=True, log=print):
    "Build the site from `nbs` into `out` (replaced only when the build succeeds); returns the pages."
    from nbdev.config import get_config
    cfg = get_config()
    nbs = Path(nbs or cfg.nbs_path).resolve()
    out = Path(out or cfg.config_path/cfg.doc_path.name).resolve()
    t0 = time.time()
    pages = find_pages(nbs)
    log(f'{len(pages)} notebooks: ' + ', '.join(str(p.rel) for p in pages))
    results = process_all(pages, jobs or os.cpu_count() or 1, cache)
    errors = [f'{p.rel}: {r["error"]}' for p, r in zip(pages, results) if 'error' in r]
    if errors:
        raise SystemExit('nbdev could not process these notebooks for the docs (nbdev_docs would fail the same way):\n'
                         + '\n'.join(errors))
    for p, r in zip(pages, results):
        for w in r.get('warnings', []): log(f'warning: {p.rel}: {w}')
    log(f'nbdev processing: {time.time() - t0:.1f}s (' + ', '.join((f'{p.rel.stem} cached' if r['cached'] else f'{p.rel.stem} {r["seconds"]:.1f}s') for p, r in zip(pages, results)) + ')')
    tmp = Path(tempfile.mkdtemp(prefix='.docs-', dir=out.parent))
    try:
        problems = render_site(pages, results, tmp, nbs)
        for pr in problems: log(f'warning: {pr}')   # tests/test_docs_site.py fails on broken links
        if out.exists(): shutil.rmtree(out)
        tmp.chmod(0o755)
        tmp.rename(out)
    finally:
        if tmp.exists(): shutil.rmtree(tmp)
    log(f'wrote {len(pages)} pages to {out} in {time.time() - t0:.1f}s; open {out/"index.html"}')
    return pages

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--nbs', help='notebook folder (default: settings.ini nbs_path)')
    ap.add_argument('--out', help='output folder (default: settings.ini doc_path, _docs)')
    ap.add_argument('--jobs', type=int, help='notebooks processed at once (default: CPU count)')
    ap.add_argument('--no-cache', action='store_true', help=f'process every notebook again (cache: {CACHE.relative_to(ROOT)}/)')
    ap.add_argument('--sidebar', action='store_true', help='also write nbs/sidebar.yml for Quarto')
    a = ap.parse_args(argv)
    os.chdir(ROOT)
    if a.sidebar:
        from nbdev.config import get_config
        nbs = Path(a.nbs or get_config().nbs_path)
        (nbs/'sidebar.yml').write_text(sidebar_yml(find_pages(nbs)))
        print(f'wrote {nbs/"sidebar.yml"}')
    build(a.nbs, a.out, a.jobs, cache=not a.no_cache)

if __name__ == '__main__': main()
