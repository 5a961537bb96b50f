"""The docs website, built offline by `python tools/build_docs.py` and checked in headless Chromium.

    pytest tests/test_docs_site.py        (needs Debian's chromium: apt-get install -y chromium)

Every page of the site (the home page and one per notebook) is opened in a real browser over
file:// and the home page also over http://: each page must load and show its notebook's title,
every navigation link must lead to a page of the site, figures must decode, API docs must be
there, and no Quarto-only markup may show as text. Screenshots of the home page and the discovery
page are saved to tests/out/screenshots/. The Quarto configuration (for `nbdev_docs`) is checked too.
"""
import base64, functools, http.server, json, os, re, shutil, subprocess, sys, tempfile, threading, time
from pathlib import Path
from urllib.parse import urlparse, unquote
from urllib.request import urlopen

import nbformat, pytest, yaml

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT/'tests'/'out'/'screenshots'
# The repository's notebooks and site; CODA_DOCS_NBS/CODA_DOCS_OUT check another notebook folder.
NBS = Path(os.environ.get('CODA_DOCS_NBS', ROOT/'nbs')).resolve()
SITE = Path(os.environ.get('CODA_DOCS_OUT', ROOT/'_docs')).resolve()
sys.path.insert(0, str(ROOT/'tools'))
import build_docs

CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
                  '--disable-component-update', '--disable-sync', '--no-first-run']
INSTALL_HINT = ('Chromium is needed to check the docs site and was not found. Install it with\n'
                '    apt-get update && apt-get install -y chromium\n'
                '(Debian/Ubuntu package `chromium`; .ci/run does this), or point $CHROMIUM at a Chromium/Chrome binary.')

def chromium_path():
    "$CHROMIUM if set, else Debian's /usr/bin/chromium or a chromium on the PATH; None if there is none."
    cands = [os.environ['CHROMIUM']] if os.environ.get('CHROMIUM') else \
            ['/usr/bin/chromium', shutil.which('chromium'), shutil.which('chromium-browser')]
    return next((c for c in cands if c and os.path.isfile(c) and os.access(c, os.X_OK)), None)


class Chromium:
    "Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe): no extra packages."
    def __init__(self, binary, width=1280, height=900):
        self.profile = tempfile.mkdtemp(prefix='coda-chromium-')
        to_chrome, self._w = os.pipe()    # we write commands; Chromium reads fd 3
        self._r, from_chrome = os.pipe()  # Chromium writes replies and events on fd 4
        def fds(): os.dup2(to_chrome, 3); os.dup2(from_chrome, 4)
        self.log = open(Path(self.profile)/'chromium.log', 'w')
        self.proc = subprocess.Popen([binary, *CHROMIUM_FLAGS, f'--user-data-dir={self.profile}',
                                      '--remote-debugging-pipe', f'--window-size={width},{height}', 'about:blank'],
                                     pass_fds=(3, 4), preexec_fn=fds, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        os.close(to_chrome); os.close(from_chrome)
        self._buf, self._id, self.events = b'', 0, []
        tid = self.call('Target.createTarget', url='about:blank')['targetId']
        self.session = self.call('Target.attachToTarget', targetId=tid, flatten=True)['sessionId']
        for d in ('Page', 'Runtime', 'Network', 'Log'): self.call(f'{d}.enable', session=self.session)
        self.call('Emulation.setDeviceMetricsOverride', session=self.session, width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    def _recv(self, timeout=60):
        end = time.time() + timeout
        while b'\0' not in self._buf:
            if time.time() > end: raise TimeoutError('no answer from Chromium')
            import select
            if not select.select([self._r], [], [], 1)[0]:
                if self.proc.poll() is not None: raise RuntimeError(f'Chromium exited with {self.proc.returncode}')
                continue
            chunk = os.read(self._r, 1 << 20)
            if not chunk: raise RuntimeError('Chromium closed the DevTools pipe')
            self._buf += chunk
        msg, self._buf = self._buf.split(b'\0', 1)
        return json.loads(msg)

    def call(self, method, session=None, **params):
        self._id += 1
        msg = dict(id=self._id, method=method, params=params, **({'sessionId': session} if session else {}))
        os.write(self._w, json.dumps(msg).encode() + b'\0')
        while True:
            m = self._recv()
            if m.get('id') == self._id:
                if 'error' in m: raise RuntimeError(f'{method}: {m["error"]}')
                return m.get('result', {})
            self.events.append(m)

    def open(self, url, timeout=60):
        "Navigate and wait for the load event; returns the events (errors, failed loads) seen meanwhile."
        self.events = []
        r = self.call('Page.navigate', session=self.session, url=url)
        if 'errorText' in r: raise RuntimeError(f'{url}: {r["errorText"]}')
        if not r.get('loaderId'): return self.events   # same-document navigation (#fragment): no load event
        end = time.time() + timeout
        while not any(e.get('method') == 'Page.loadEventFired' for e in self.events):
            if time.time() > end: raise TimeoutError(f'{url} did not finish loading in {timeout}s')
            self.events.append(self._recv(timeout))
        return self.events

    def js(self, expr):
        r = self.call('Runtime.evaluate', session=self.session, expression=expr, returnByValue=True, awaitPromise=True)
        if 'exceptionDetails' in r: raise RuntimeError(f'JavaScript failed: {r["exceptionDetails"]}')
        return r['result'].get('value')

    def screenshot(self, path):
        png = base64.b64decode(self.call('Page.captureScreenshot', session=self.session, format='png')['data'])
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(png)
        return png

    def close(self):
        try: self.call('Browser.close')
        except Exception: pass
        try: self.proc.wait(10)
        except subprocess.TimeoutExpired: self.proc.kill(); self.proc.wait()
        os.close(self._w); os.close(self._r); self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)


# What a page looks like to a reader, read from the DOM after load (images decoded).
PAGE_JS = r'''(async () => {
  await Promise.all([...document.images].map(i => i.complete ? null : new Promise(r => { i.onload = i.onerror = r; })));
  const abs = a => a.href;
  return {
    title: document.title,
    h1: [...document.querySelectorAll('main h1.title')].map(h => h.innerText.trim()),
    sidebar: [...document.querySelectorAll('#sidebar a')].map(a => ({text: a.innerText.trim(), href: abs(a), active: a.classList.contains('active')})),
    sections: [...document.querySelectorAll('#sidebar .sidebar-section-title')].map(s => s.innerText.trim()),
    nav: [...document.querySelectorAll('#navbar a, #sidebar a, .page-navigation a, #TOC a')].map(abs),
    links: [...document.querySelectorAll('main a[href]')].map(abs),
    ids: [...document.querySelectorAll('[id]')].map(e => e.id),
    images: [...document.images].map(i => ({src: i.src.slice(0, 40), w: i.naturalWidth, h: i.naturalHeight, shown: i.getBoundingClientRect().width})),
    resources: [...document.querySelectorAll('script[src], link[href][rel=stylesheet], img[src], iframe[src]')].map(e => e.src || e.href),
    styled: {navbar: getComputedStyle(document.querySelector('#navbar')).backgroundColor,
             description: document.querySelector('.description') && getComputedStyle(document.querySelector('.description')).fontStyle},
    text: document.body.innerText,
    prose: (() => { const m = document.querySelector('main').cloneNode(true);
                    m.querySelectorAll('pre, code').forEach(e => e.remove()); return m.textContent; })(),
    apiHeadings: [...document.querySelectorAll('main .cell-output-markdown h3, main .cell-output-markdown h4')].map(h => h.id),
    signatures: [...document.querySelectorAll('main .cell-output-markdown pre')].map(p => p.innerText),
  };
})()'''


def nb_title(path):
    "The title a notebook declares: its first `# Title` markdown line (or front matter)."
    from nbdev.frontmatter import _md2dict, _fm2dict
    for c in nbformat.read(path, as_version=4).cells:
        d = _fm2dict(c.source) if c.cell_type == 'raw' else _md2dict(c.source) if c.cell_type == 'markdown' else {}
        if d.get('title'): return d['title']

def site_notebooks(NBS=NBS):
    "The notebooks that must be pages: index.ipynb, every numbered stage notebook, the other guides (extending), and the tutorials."
    guides = [p for p in sorted(NBS.glob('[a-z]*.ipynb')) if p.name != 'index.ipynb']
    nbs = [NBS/'index.ipynb'] + sorted(NBS.glob('[0-9][0-9]_*.ipynb')) + guides + sorted(NBS.glob('tutorials/*.ipynb'))
    return [p for p in nbs if p.exists() or p.name == 'index.ipynb']

def declared_stages():
    "The stage notebooks the home page names (`NN_name` in index.ipynb), and whether the list is final (its last one exists)."
    src = '\n'.join(c.source for c in nbformat.read(NBS/'index.ipynb', as_version=4).cells if c.cell_type == 'markdown')
    declared = sorted(set(re.findall(r'`(\d\d_\w+?)(?:\.ipynb)?`', src)))
    return declared, bool(declared) and (NBS/f'{declared[-1]}.ipynb').exists()

def test_declared_stages_have_pages(pages):
    "Once the last stage the home page names exists, every stage it names must have its notebook and page."
    declared, final = declared_stages()
    missing = [d for d in declared if f'{d}.ipynb' not in pages]
    if not final: pytest.skip(f'the stage list is not final yet ({declared[-1] if declared else "no stage"} is not written); missing now: {missing}')
    assert not missing, f'stages named on the home page without a notebook/page: {missing}'

def file_of(url):
    "The file a file:// URL points to (None for other schemes)."
    u = urlparse(url)
    return Path(unquote(u.path)) if u.scheme == 'file' else None


@pytest.fixture(scope='module')
def build_log():
    "What the one docs command printed, building the site (timed)."
    t = time.time()
    cmd = [sys.executable, str(ROOT/'tools'/'build_docs.py')]
    if NBS != ROOT/'nbs' or SITE != ROOT/'_docs': cmd += ['--nbs', str(NBS), '--out', str(SITE)]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, f'the docs build failed:\n{r.stdout}\n{r.stderr}'
    print(f'\ndocs build: {time.time() - t:.1f}s\n{r.stdout}')
    return r.stdout

@pytest.fixture(scope='module')
def built(build_log):
    "The pages of the built site."
    return build_docs.find_pages(NBS)

def test_no_cell_mixes_imports_and_code(build_log):
    "The docs build runs every cell that holds an import (as nbdev_docs does), so a test beside an import would run there too."
    mixed = [l for l in build_log.splitlines() if 'mixes imports and other code' in l]
    assert not mixed, 'keep imports in cells of their own:\n' + '\n'.join(mixed)

@pytest.fixture(scope='module')
def browser():
    path = chromium_path()
    if path is None: pytest.fail(INSTALL_HINT, pytrace=False)
    b = Chromium(path)
    yield b
    b.close()

@pytest.fixture(scope='module')
def pages(built, browser):
    "Every page of the site as the browser shows it over file://, with the events of its load."
    res = {}
    for p in built:
        f = SITE/str(p.out)
        assert f.is_file(), f'{p.rel} has no page {f}'
        events = browser.open(f.as_uri())
        res[p.rel.as_posix()] = dict(page=p, file=f, dom=browser.js(PAGE_JS), events=events)
    return res


def test_every_notebook_has_a_page_with_its_title(pages):
    want = site_notebooks()
    assert len(want) >= 2, 'expected index.ipynb and at least one stage notebook in nbs/'
    for nb in want:
        rel = nb.relative_to(NBS).as_posix()
        assert rel in pages, f'no page for {rel}'
        dom, title = pages[rel]['dom'], nb_title(nb)
        assert title, f'{rel} has no "# Title" first cell'
        assert dom['h1'] == [title], f'{rel}: page shows the heading {dom["h1"]}, not its title {title!r}'
        assert dom['title'].startswith(title), f'{rel}: <title> is {dom["title"]!r}'
    # the sidebar lists every page, home first, then the notebooks in pipeline order
    side = [file_of(a['href']) for a in pages['index.ipynb']['dom']['sidebar']]
    assert side == [SITE/str(p['page'].out) for p in pages.values()], f'sidebar order: {side}'
    stages = [p['page'].rel.name for p in pages.values() if p['page'].section == 'API']
    assert stages == sorted(stages) and len(stages) == len(list(NBS.glob('[0-9][0-9]_*.ipynb')))
    assert 'API' in pages['index.ipynb']['dom']['sections']

def test_pages_load_cleanly_and_offline(pages):
    for rel, p in pages.items():
        failed = [e['params'] for e in p['events'] if e.get('method') in ('Network.loadingFailed', 'Runtime.exceptionThrown')]
        assert not failed, f'{rel}: failed loads or script errors: {failed}'
        remote = [u for u in p['dom']['resources'] if not u.startswith(('file:', 'data:'))]
        assert not remote, f'{rel} loads resources from the network: {remote}'
        st = p['dom']['styled']   # site.css colours the navbar; nbs/styles.css (shared with Quarto) sets descriptions in italics
        assert st['navbar'] == 'rgb(39, 128, 227)', f'{rel}: site.css not applied (navbar {st["navbar"]})'
        assert st['description'] in (None, 'italic'), f'{rel}: styles.css not applied'
        active = [a['text'] for a in p['dom']['sidebar'] if a['active']]
        assert len(active) == 1, f'{rel}: the sidebar should mark this page, marks {active}'

def test_navigation_links_resolve(pages):
    for rel, p in pages.items():
        dom = p['dom']
        for url in dom['nav'] + dom['links']:
            f = file_of(url)
            if f is None: continue   # http(s) links to the repo/source
            frag = unquote(urlparse(url).fragment)
            assert f.is_file(), f'{rel}: link to {url}, which does not exist'
            assert SITE in f.parents, f'{rel}: link {url} leads out of the site'
            # nbdev links every `symbol` it knows, private ones too, but show_doc documents only public ones
            if not frag or frag.startswith('_'): continue
            target = next(q for q in pages.values() if q['file'] == f)
            assert frag in target['dom']['ids'], f'{rel}: link {url} names an anchor that {f.name} lacks'

def test_figures_render(pages):
    drawn = {rel: [i for i in p['dom']['images'] if i['w'] > 0 and i['h'] > 0 and i['shown'] > 0] for rel, p in pages.items()}
    for rel, p in pages.items():
        broken = [i for i in p['dom']['images'] if i['w'] == 0]
        assert not broken, f'{rel}: images that do not decode: {broken}'
        saved = sum('image/png' in o.get('data', {}) for c in nbformat.read(p['page'].src, as_version=4).cells
                    if c.cell_type == 'code' and not re.search(r'^#\|\s*(hide|export|exporti|include:\s*false|output:\s*false)', c.source, re.M)
                    for o in c.get('outputs', []))
        assert len(drawn[rel]) >= saved, f'{rel}: {saved} saved figures, {len(drawn[rel])} rendered'
    assert sum(map(len, drawn.values())) >= 1, 'no page shows a figure: are the notebooks saved with their outputs?'

def test_api_docs_shown(pages):
    "Every public function and class a notebook exports has its show_doc entry (heading + signature)."
    from coda._modidx import d as modidx
    by_page = {str(p['page'].out): p for p in pages.values()}
    checked = 0
    for mod, syms in modidx['syms'].items():
        for sym, (doc, _) in syms.items():
            name = sym[len(mod) + 1:]
            page, _, anchor = doc.partition('#')
            if '.' in name or name.startswith('_') or page not in by_page: continue  # methods, private, notebooks not here
            dom = by_page[page]['dom']
            assert anchor in dom['ids'], f'{sym}: nbdev links it to {doc}, which has no #{anchor}'
            # a section heading of the same name takes the plain id first (pandoc/Quarto do the same): show_doc's is then #name-1
            assert any(re.fullmatch(rf'{re.escape(anchor)}(-\d+)?', h) for h in dom['apiHeadings']), f'{sym}: no show_doc heading on {page}'
            assert any(re.search(rf'\b(def|class) {re.escape(name)}\b', s) for s in dom['signatures']), f'{sym}: no signature on {page}'
            checked += 1
    exporting = [rel for rel, p in pages.items()
                 if any(c.cell_type == 'code' and re.search(r'^#\|\s*export\s*$', c.source, re.M) and re.search(r'^(def|class) [a-zA-Z]', c.source, re.M)
                        for c in nbformat.read(p['page'].src, as_version=4).cells)]
    for rel in exporting: assert pages[rel]['dom']['apiHeadings'], f'{rel} exports functions but its page documents none'
    assert checked and exporting, 'no exported symbols found (coda/_modidx.py, #| export cells)'

def test_no_quarto_markup_as_text(pages):
    everywhere = [(r'^\s*#\|', 'a #| directive'), (r'^---\s*$\s*^(title|description|output-file):', 'front matter'),
                  (r'^\s*(title|description|output-file):\s', 'front matter')]
    prose = [(r'^\s*:::', 'a ::: fenced div'), (r'\]\{', 'a {attribute} block'), (r'\{(target|style)=', 'link attributes'),
             (r'\{\{<', 'a shortcode'), (r'\{[#.][\w-]+\}', 'a {#id} / {.class} attribute'),
             (r'(?<![\\$])\$(?![\s$])[^$\n]+?(?<![\s\\])\$(?!\d)', 'TeX math (is latex2mathml installed?)')]
    for rel, p in pages.items():
        for pat, what, text in [(*b, p['dom']['text']) for b in everywhere] + [(*b, p['dom']['prose']) for b in prose]:
            m = re.search(pat, text, re.M)
            assert not m, f'{rel}: {what} shows as text: ...{text[max(0, m.start() - 80):m.end() + 80]!r}...'
    desc = pages['index.ipynb']['dom']['text']
    assert '\n> ' not in desc and not desc.lstrip().startswith('>'), 'a "> summary" line shows raw'

def test_screenshots(pages, browser):
    "Home and discovery pages as a reader sees them (tests/out/screenshots/*.png)."
    from PIL import Image
    shots = {'home': pages['index.ipynb']['file']}
    disc = [p for rel, p in pages.items() if re.match(r'^\d+_discovery\.ipynb$', rel)]
    if disc: shots['discovery'] = disc[0]['file']
    for name, f in shots.items():
        browser.open(f.as_uri())
        browser.js(PAGE_JS)
        out = SHOTS/f'{name}.png'
        browser.screenshot(out)
        im = Image.open(out).convert('RGB')
        assert im.size == (1280, 900)
        assert len(im.getcolors(1 << 20) or []) > 50, f'{out} looks blank'
    if not disc:
        declared, final = declared_stages()
        missing = [d for d in declared if d.endswith('_discovery')]
        assert not final, f'the stage list is final but {missing or "no discovery stage"} has no notebook in nbs/'
        pytest.skip(f'no discovery notebook yet ({missing}); only the home page screenshot was taken')

def test_site_over_http(built, browser):
    "The same site from a web server: the home page loads and every navigation link is served."
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(SITE))
    handler.log_message = lambda *a: None
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        base = f'http://127.0.0.1:{srv.server_address[1]}/'
        events = browser.open(base + 'index.html')
        dom = browser.js(PAGE_JS)
        assert not [e for e in events if e.get('method') == 'Network.loadingFailed']
        assert dom['h1'] == [nb_title(NBS/'index.ipynb')]
        assert any(i['w'] > 0 for i in dom['images']) or not dom['images']
        nav = {u.split('#')[0] for u in dom['nav'] if u.startswith(base)}
        assert len(nav) >= len(built), f'the home page links to {len(nav)} pages, the site has {len(built)}'
        for u in sorted(nav):
            with urlopen(u) as r: assert r.status == 200 and b'<h1 class="title">' in r.read(), u
    finally:
        srv.shutdown(); srv.server_close()

def test_quarto_config():
    "The nbdev 2 + Quarto set-up that `nbdev_docs` uses: _quarto.yml, nbdev.yml, sidebar.yml, styles.css."
    from nbdev.config import get_config
    NBS = ROOT/'nbs'   # the repository's own configuration, whatever folder the site was built from
    from nbdev.quarto import _nbdev_yml
    cfg = get_config()
    q = yaml.safe_load((NBS/'_quarto.yml').read_text())
    assert q['project']['type'] == 'website'
    assert set(q['metadata-files']) == {'nbdev.yml', 'sidebar.yml'}
    assert (NBS/q['format']['html']['css']).is_file()
    # nbdev_docs rewrites nbdev.yml from settings.ini: it must already be what nbdev writes
    vals = {k: cfg[k] for k in ['title', 'description', 'branch', 'git_url', 'doc_host', 'doc_baseurl']}
    assert (NBS/'nbdev.yml').read_text() == _nbdev_yml.format(doc_path=cfg.doc_path.name, **vals), \
        'nbs/nbdev.yml differs from what nbdev_docs writes from settings.ini'
    # the sidebar lists every notebook in order, with the tutorials
    want = build_docs.sidebar_yml(build_docs.find_pages(NBS))
    assert (NBS/'sidebar.yml').read_text() == want, \
        'nbs/sidebar.yml is out of date with the notebooks: run `python tools/build_docs.py --sidebar`'
    listed = [i['contents'] if 'section' in i else [i] for i in yaml.safe_load(want)['website']['sidebar']['contents']]
    flat = [x if isinstance(x, str) else x['href'] for i in listed for x in i]
    assert flat == [p.relative_to(NBS).as_posix() for p in site_notebooks(NBS)]
    assert cfg.custom_sidebar, ('settings.ini has custom_sidebar = False, so nbdev_docs would replace nbs/sidebar.yml '
                                'with its own (no API/Tutorials sections): set custom_sidebar = True')
