// The retformer page: classify a picture and show the evidence behind the answer, browse and edit
// the knowledge base. Plain JavaScript talking to the JSON API; every text from the server is
// inserted with textContent (never as HTML).

const PAGE_SIZE = 12;
const $ = (id) => document.getElementById(id);

const state = {
  /** The last picture classified (a Blob), re-classified after every KB edit. */
  picture: null,
  lastLabel: null,
  offset: 0,
  total: 0,
  /** 'all' (paging), or a search result being shown. */
  view: 'all',
};

function announce(message, isError = false) {
  const el = $('status');
  el.textContent = message;
  el.classList.toggle('error', isError);
}

async function api(path, init = {}) {
  const res = await fetch(path, init);
  const type = res.headers.get('content-type') || '';
  const body = type.includes('application/json') ? await res.json() : await res.text();
  if (!res.ok) throw new Error(body?.message ? body.message : `${res.status} ${res.statusText}`);
  return body;
}

function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'text') node.textContent = v;
    else if (k === 'class') node.className = v;
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c) node.append(c);
  return node;
}

const pct = (x) => `${(100 * x).toFixed(1)}%`;

/** Set a bar's fill through the CSSOM (the page's CSP refuses style attributes). */
function widthOf(fill, fraction) {
  fill.style.width = `${Math.max(0, Math.min(1, fraction)) * 100}%`;
  return fill;
}

/** A labelled horizontal bar: the value is written out, the bar is decoration. */
function bar(label, value, fraction, extraClass = '') {
  const fill = widthOf(el('span', { class: `fill ${extraClass}`, 'aria-hidden': 'true' }), fraction);
  return el('li', { class: 'bar' }, [el('span', { class: 'bar-label', text: label }), el('span', { class: 'track', 'aria-hidden': 'true' }, [fill]), el('span', { class: 'bar-value', text: value })]);
}

function pairCard(p, extra) {
  const img = el('img', { src: p.thumbnail, alt: p.text, width: '80', height: '80', loading: 'lazy' });
  const lines = [el('p', { class: 'pair-text', text: p.text }), el('p', { class: 'muted small', text: `${p.label ? `label ${p.label} · ` : ''}id ${p.id}` })];
  return el('li', { class: 'card', dataset: { id: p.id } }, [img, el('div', { class: 'card-body' }, [...lines, ...extra])]);
}

// ---- prediction ----

function showPrediction(p) {
  $('result').hidden = false;
  $('pred-label').textContent = p.label;
  $('pred-prob').textContent = pct(p.probability);
  const change = $('pred-change');
  if (state.lastLabel !== null && state.lastLabel !== p.label) {
    change.hidden = false;
    change.textContent = `Changed from ${state.lastLabel} after the knowledge base changed.`;
  } else change.hidden = true;
  state.lastLabel = p.label;

  $('top-classes').replaceChildren(...p.top.map((t) => bar(t.label, pct(t.probability), t.probability)));

  const rows = [['MLP branch (L_I)', p.branches.image]];
  if (p.branches.retrieval !== undefined) rows.push(['Retrieval branch (L_R)', p.branches.retrieval]);
  const scale = Math.max(1e-9, ...rows.map(([, v]) => Math.abs(v)));
  const items = rows.map(([name, v]) => bar(name, v.toFixed(3), Math.abs(v) / scale, v < 0 ? 'negative' : ''));
  if (p.gate !== undefined) items.push(bar('Adaptive gate (retrieval weight)', p.gate.toFixed(3), p.gate));
  $('branches').replaceChildren(...items);

  const maxAtt = Math.max(1e-9, ...p.neighbours.map((n) => n.attention));
  $('neighbours').replaceChildren(
    ...p.neighbours.map((n, i) =>
      pairCard(n, [
        el('p', { class: 'small', text: `#${i + 1} · similarity ${n.similarity.toFixed(3)} · attention ${pct(n.attention)}` }),
        el('span', { class: 'track', 'aria-hidden': 'true' }, [widthOf(el('span', { class: 'fill' }), n.attention / maxAtt)]),
      ]),
    ),
  );
  if (p.neighbours.length === 0) $('neighbours').replaceChildren(el('li', { class: 'muted', text: 'This model uses no retrieval (mlp-only).' }));
}

async function classify(blob, why) {
  state.picture = blob;
  $('query-preview').src = URL.createObjectURL(blob);
  announce(why === 'refresh' ? 'Classifying again with the changed knowledge base…' : 'Classifying…');
  try {
    const p = await api('/predict', { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: blob });
    showPrediction(p);
    announce(`Predicted ${p.label} (${pct(p.probability)}), from ${p.neighbours.length} neighbours.`);
  } catch (err) {
    announce(`Could not classify: ${err.message}`, true);
  }
}

function takeFile(file) {
  if (!file) return;
  state.lastLabel = null;
  classify(file, 'new');
}

// ---- knowledge base ----

function removeButton(p) {
  const b = el('button', { type: 'button', class: 'danger', text: 'Remove', 'aria-label': `Remove pair ${p.id}` });
  b.addEventListener('click', () => removePair(p.id));
  return b;
}

async function loadStats() {
  const s = await api('/kb/stats');
  $('model-line').textContent = `Model ${s.model.id} (${s.model.variant}, k = ${s.model.k}, ${s.model.classes.length} classes) · knowledge base: ${s.pairs} pairs, generation ${s.generation}, encoder ${s.encoder}${s.writable ? '' : ' · read-only (no token configured)'}`;
  $('kb-stats').textContent = `${s.pairs} pairs · generation ${s.generation}`;
  $('class-list').replaceChildren(...s.model.classes.map((c) => el('option', { value: c })));
}

async function loadPage() {
  state.view = 'all';
  const page = await api(`/kb/pairs?offset=${state.offset}&limit=${PAGE_SIZE}`);
  state.total = page.total;
  if (state.offset >= page.total && page.total > 0) {
    state.offset = Math.max(0, Math.floor((page.total - 1) / PAGE_SIZE) * PAGE_SIZE);
    return loadPage();
  }
  $('kb-heading').textContent = 'All pairs, in the order they were added';
  $('pairs').replaceChildren(...page.pairs.map((p) => pairCard(p, [removeButton(p)])));
  const pages = Math.max(1, Math.ceil(page.total / PAGE_SIZE));
  $('page-info').textContent = `Page ${Math.floor(state.offset / PAGE_SIZE) + 1} of ${pages}`;
  $('prev-page').disabled = state.offset === 0;
  $('next-page').disabled = state.offset + PAGE_SIZE >= page.total;
}

function showSearch(result, what) {
  state.view = 'search';
  $('kb-heading').textContent = `${result.neighbours.length} nearest pairs to ${what} (${result.modality} index)`;
  $('pairs').replaceChildren(...result.neighbours.map((p) => pairCard(p, [el('p', { class: 'small', text: `similarity ${p.similarity.toFixed(3)}` }), removeButton(p)])));
  $('page-info').textContent = '';
  $('prev-page').disabled = true;
  $('next-page').disabled = true;
}

function authHeaders() {
  const token = $('token').value.trim();
  return token ? { authorization: `Bearer ${token}` } : {};
}

async function afterEdit(message) {
  announce(message);
  await Promise.all([loadStats(), state.view === 'all' ? loadPage() : Promise.resolve()]);
  if (state.picture) {
    await classify(state.picture, 'refresh');
    announce(`${message} Prediction now: ${$('pred-label').textContent}.`);
  }
}

async function removePair(id) {
  try {
    await api(`/kb/pairs/${encodeURIComponent(id)}`, { method: 'DELETE', headers: authHeaders() });
    if (state.view === 'search') $('pairs').querySelector(`[data-id="${CSS.escape(id)}"]`)?.remove();
    await afterEdit(`Removed pair ${id}.`);
  } catch (err) {
    announce(`Could not remove ${id}: ${err.message}`, true);
  }
}

async function addPair(event) {
  event.preventDefault();
  const file = $('add-file').files[0];
  if (!file) return announce('Choose a picture for the pair.', true);
  const form = new FormData();
  form.append('text', $('add-text').value);
  if ($('add-label').value.trim()) form.append('label', $('add-label').value.trim());
  if ($('add-allow-new').checked) form.append('allowNewLabel', 'true');
  form.append('image', file);
  try {
    const res = await api('/kb/pairs', { method: 'POST', headers: authHeaders(), body: form });
    $('add-file').value = '';
    $('add-text').value = '';
    await afterEdit(`Added pair ${res.id}.`);
  } catch (err) {
    announce(`Could not add the pair: ${err.message}`, true);
  }
}

// ---- wiring ----

function wire() {
  const drop = $('drop');
  $('predict-file').addEventListener('change', (e) => takeFile(e.target.files[0]));
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    takeFile(e.dataTransfer.files[0]);
  });
  document.addEventListener('paste', (e) => {
    const item = [...(e.clipboardData?.items || [])].find((i) => i.kind === 'file' && i.type.startsWith('image/'));
    if (item) takeFile(item.getAsFile());
  });
  $('add-form').addEventListener('submit', addPair);
  $('search-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const text = $('search-text').value.trim();
    if (!text) return loadPage();
    try {
      showSearch(await api(`/kb/search?text=${encodeURIComponent(text)}&k=${PAGE_SIZE}`), `“${text}”`);
    } catch (err) {
      announce(`Search failed: ${err.message}`, true);
    }
  });
  $('search-file').addEventListener('change', async (e) => {
    const file = e.target.files[0];
    if (!file) return;
    try {
      const form = new FormData();
      form.append('k', String(PAGE_SIZE));
      form.append('image', file);
      showSearch(await api('/kb/search', { method: 'POST', body: form }), 'the picture');
    } catch (err) {
      announce(`Search failed: ${err.message}`, true);
    }
  });
  $('show-all').addEventListener('click', () => loadPage().catch((err) => announce(err.message, true)));
  $('prev-page').addEventListener('click', () => {
    state.offset = Math.max(0, state.offset - PAGE_SIZE);
    loadPage().catch((err) => announce(err.message, true));
  });
  $('next-page').addEventListener('click', () => {
    state.offset += PAGE_SIZE;
    loadPage().catch((err) => announce(err.message, true));
  });
}

wire();
Promise.all([loadStats(), loadPage()])
  .then(() => announce('Ready.'))
  .catch((err) => announce(`Could not reach the server: ${err.message}`, true));
