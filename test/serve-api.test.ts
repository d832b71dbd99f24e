import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/serve/app.ts';
import * as S from '../src/serve/schemas.ts';
import { removeTempDirs } from './helpers/kb-fixtures.ts';
import { makeServeFixture, type ServeFixture } from './helpers/serve-fixtures.ts';
import { assertOneLineError, b64, json, multipartBody, postJson } from './helpers/serve-http.ts';

const TOKEN = 'test-token-7f3a';
const auth = { authorization: `Bearer ${TOKEN}` };

describe('HTTP service: predictions, search, live KB edits', () => {
  let fx: ServeFixture;
  let app: FastifyInstance;
  before(async () => {
    // the KB starts without purple pairs: a purple picture cannot be called purple until some are added
    fx = await makeServeFixture({ n: 15, colours: ['red', 'green', 'blue', 'yellow'] });
    app = await buildApp(fx.deps, { token: TOKEN });
  });
  after(async () => {
    await app.close();
    removeTempDirs();
  });

  it('classifies a picture sent as JSON base64, multipart and a raw body alike, with the evidence', async () => {
    const png = await fx.png('blue', 'circle');
    const viaJson = await postJson(app, '/predict', { image: b64(png), top: 3 });
    assert.equal(viaJson.statusCode, 200, viaJson.body);
    const p = S.PredictionOut.parse(json(viaJson));
    assert.equal(p.label, 'blue');
    assert.equal(p.top.length, 3);
    assert.equal(p.top[0].label, 'blue');
    assert.equal(p.neighbours.length, 4);
    for (let i = 1; i < p.neighbours.length; i++) assert.ok(p.neighbours[i - 1].attention >= p.neighbours[i].attention, 'ordered by attention');
    assert.ok(Math.abs(p.neighbours.reduce((s, n) => s + n.attention, 0) - 1) < 1e-5);
    assert.equal(p.neighbours[0].label, 'blue');
    assert.equal(typeof p.branches.retrieval, 'number');
    assert.deepEqual(p.kb, { generation: fx.deps.kb.manifest.generation, size: 12 });

    const form = await multipartBody({ top: '3' }, [{ field: 'image', name: 'x.png', bytes: png }]);
    const viaForm = await app.inject({ method: 'POST', url: '/predict', ...form });
    assert.equal(viaForm.statusCode, 200, viaForm.body);
    assert.deepEqual(json(viaForm), json(viaJson));

    const viaRaw = await app.inject({ method: 'POST', url: '/predict', payload: png, headers: { 'content-type': 'image/png' } });
    assert.equal(viaRaw.statusCode, 200, viaRaw.body);
    assert.equal(json<{ label: string }>(viaRaw).label, 'blue');

    const thumb = await app.inject({ method: 'GET', url: p.neighbours[0].thumbnail });
    assert.equal(thumb.statusCode, 200);
    assert.equal(thumb.headers['content-type'], 'image/png');
    assert.deepEqual([...thumb.rawPayload.subarray(1, 4)], [...Buffer.from('PNG')]);
  });

  it('classifies an embedding and a batch, each answer the same as alone', async () => {
    const pngs = await Promise.all([fx.png('red', 'square', 1), fx.png('green', 'stripe', 2), fx.png('yellow', 'circle', 3)]);
    const vectors = await fx.deps.predictor.encoder.embedImages(pngs);
    const D = fx.deps.predictor.encoder.dim;
    const embedding = Array.from(vectors.subarray(0, D), (x) => x * 3); // any length: the server normalises
    const one = await postJson(app, '/predict', { embedding });
    assert.equal(one.statusCode, 200, one.body);
    assert.equal(json<{ label: string }>(one).label, 'red');

    const batch = await postJson(app, '/predict/batch', { images: pngs.map(b64) });
    assert.equal(batch.statusCode, 200, batch.body);
    const out = S.PredictBatchOut.parse(json(batch));
    assert.deepEqual(
      out.predictions.map((q) => q.label),
      ['red', 'green', 'yellow'],
    );
    const form = await multipartBody({}, pngs.map((bytes, i) => ({ field: 'images', name: `${i}.png`, bytes })));
    const viaForm = await app.inject({ method: 'POST', url: '/predict/batch', ...form });
    assert.deepEqual(json(viaForm), json(batch));
    const viaEmb = await postJson(app, '/predict/batch', { embeddings: [0, 1, 2].map((i) => Array.from(vectors.subarray(i * D, (i + 1) * D))) });
    assert.deepEqual(
      S.PredictBatchOut.parse(json(viaEmb)).predictions.map((q) => q.label),
      ['red', 'green', 'yellow'],
    );
  });

  it('abstains below abstainBelow: label and index null, the best guess first in top, for one picture and per batch row', async () => {
    const png = await fx.png('blue', 'circle');
    const plain = S.PredictionOut.parse(json(await postJson(app, '/predict', { image: b64(png) })));
    assert.equal('abstained' in plain, false);
    const sure = S.PredictionOut.parse(json(await postJson(app, '/predict', { image: b64(png), abstainBelow: 0 })));
    assert.equal(sure.abstained, false);
    assert.equal(sure.label, 'blue');
    const unsure = S.PredictionOut.parse(json(await postJson(app, '/predict', { image: b64(png), abstainBelow: 1 })));
    assert.equal(unsure.abstained, true);
    assert.equal(unsure.label, null);
    assert.equal(unsure.index, null);
    assert.equal(unsure.top[0].label, 'blue');
    assert.equal(unsure.probability, plain.probability);
    const form = await multipartBody({ abstainBelow: '1' }, [{ field: 'image', name: 'x.png', bytes: png }]);
    assert.equal(json<{ abstained: boolean }>(await app.inject({ method: 'POST', url: '/predict', ...form })).abstained, true);

    const pngs = await Promise.all([fx.png('red', 'square', 1), fx.png('green', 'stripe', 2), fx.png('yellow', 'circle', 3), fx.png('blue', 'stripe', 4)]);
    const all = S.PredictBatchOut.parse(json(await postJson(app, '/predict/batch', { images: pngs.map(b64) }))).predictions;
    const probs = [...new Set(all.map((q) => q.probability))].sort((a, b) => a - b);
    assert.ok(probs.length >= 2, 'the fixture gives distinct probabilities');
    const cut = (probs[0] + probs[1]) / 2;
    const some = S.PredictBatchOut.parse(json(await postJson(app, '/predict/batch', { images: pngs.map(b64), abstainBelow: cut }))).predictions;
    assert.deepEqual(
      some.map((q) => q.abstained),
      all.map((q) => q.probability < cut),
    );
    assert.deepEqual(
      some.map((q) => q.label),
      all.map((q) => (q.probability < cut ? null : q.label)),
    );
    assert.deepEqual(
      some.map((q) => q.top[0].label),
      all.map((q) => q.top[0].label),
    );

    const bad = await postJson(app, '/predict', { image: b64(png), abstainBelow: 1.5 });
    assert.match(assertOneLineError(bad, 400), /^abstainBelow: /);
  });

  it('searches the KB by text, picture and embedding', async () => {
    const byText = await app.inject({ method: 'GET', url: '/kb/search?text=a%20green%20stripe&k=3' });
    assert.equal(byText.statusCode, 200, byText.body);
    const t = S.SearchOut.parse(json(byText));
    assert.equal(t.modality, 'text');
    assert.equal(t.neighbours.length, 3);
    assert.equal(t.neighbours[0].text, 'a green stripe');
    const png = await fx.png('yellow', 'square', 5);
    const byImage = await postJson(app, '/kb/search', { image: b64(png), k: 2 });
    const i = S.SearchOut.parse(json(byImage));
    assert.equal(i.modality, 'image');
    assert.deepEqual(
      i.neighbours.map((n) => n.label),
      ['yellow', 'yellow'],
    );
    const form = await multipartBody({ k: '2' }, [{ field: 'image', name: 'q.png', bytes: png }]);
    assert.deepEqual(json(await app.inject({ method: 'POST', url: '/kb/search', ...form })), json(byImage));
  });

  it("answers clip-retrieval's /knn-service shape", async () => {
    const list = await app.inject({ method: 'GET', url: '/indices-list' });
    const [index] = S.IndicesOut.parse(json(list));
    const res = await postJson(app, '/knn-service', { text: 'a red circle', modality: 'text', num_images: 4, indice_name: index, deduplicate: true, use_safety_model: false, aesthetic_score: '', aesthetic_weight: '' });
    assert.equal(res.statusCode, 200, res.body);
    const hits = S.KnnServiceOut.parse(json(res));
    assert.equal(hits.length, 4);
    assert.equal(hits[0].caption, 'a red circle');
    assert.ok(hits[0].similarity >= hits[1].similarity);
    assert.ok(hits[0].image_path.endsWith(`${hits[0].pair_id}.png`));
    assert.equal((await app.inject({ method: 'GET', url: hits[0].url })).statusCode, 200);
    const png = await fx.png('green', 'circle', 8);
    const byImage = S.KnnServiceOut.parse(json(await postJson(app, '/knn-service', { image: b64(png), modality: 'image', num_images: 2, indice_name: index })));
    assert.equal(byImage[0].label, 'green');
    const emb = Array.from(await fx.deps.predictor.encoder.embedImages([png]));
    assert.deepEqual(S.KnnServiceOut.parse(json(await postJson(app, '/knn-service', { embedding_input: emb, modality: 'image', num_images: 2, indice_name: index }))), byImage);
    assertOneLineError(await postJson(app, '/knn-service', { image_url: 'http://example.com/x.png', modality: 'image', num_images: 2, indice_name: index }), 400);
    assertOneLineError(await postJson(app, '/knn-service', { text: 'x', modality: 'image', num_images: 2, indice_name: 'laion5B' }), 404);
  });

  it('adds pairs behind the token and the next prediction changes; removing them changes it back', async () => {
    const query = await fx.png('purple', 'circle', 11);
    const before = S.PredictionOut.parse(json(await postJson(app, '/predict', { image: b64(query) })));
    assert.notEqual(before.label, 'purple');
    const generation0 = fx.deps.kb.manifest.generation;

    const unknownLabel = await postJson(app, '/kb/pairs', { image: b64(await fx.png('purple', 'circle', 20)), text: 'a purple circle', label: 'purpel' }, auth);
    assert.match(assertOneLineError(unknownLabel, 400), /unknown label "purpel"/);

    const ids: string[] = [];
    for (let s = 0; s < 3; s++) {
      const picture = await fx.png('purple', 'circle', 20 + s);
      const form = await multipartBody({ text: 'a purple circle', label: 'purple', allowNewLabel: 'true', id: 'mine-0' }, [{ field: 'image', name: 'p.png', bytes: picture }]);
      const res =
        s === 0
          ? await app.inject({ method: 'POST', url: '/kb/pairs', payload: form.payload, headers: { ...form.headers, ...auth } })
          : await postJson(app, '/kb/pairs', { image: b64(picture), text: 'a purple circle', label: 'purple' }, auth);
      assert.equal(res.statusCode, 201, res.body);
      ids.push(S.AddPairOut.parse(json(res)).id);
    }
    assert.equal(ids[0], 'mine-0');
    assert.equal(fx.deps.kb.manifest.generation, generation0 + 3);
    const dup = await postJson(app, '/kb/pairs', { image: b64(await fx.png('purple', 'circle', 21)), text: 'a purple circle', label: 'purple' }, auth);
    assert.match(assertOneLineError(dup, 409), /duplicate id/);

    const afterAdd = S.PredictionOut.parse(json(await postJson(app, '/predict', { image: b64(query) })));
    assert.equal(afterAdd.label, 'purple');
    assert.ok(afterAdd.neighbours.some((n) => n.id === 'mine-0'));
    const thumb = await app.inject({ method: 'GET', url: '/kb/pairs/mine-0/thumbnail' });
    assert.equal(thumb.statusCode, 200, 'an added pair has its picture stored and served');

    for (const id of ids) {
      const res = await app.inject({ method: 'DELETE', url: `/kb/pairs/${encodeURIComponent(id)}`, headers: auth });
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(S.RemovePairOut.parse(json(res)).id, id);
    }
    const again = S.PredictionOut.parse(json(await postJson(app, '/predict', { image: b64(query) })));
    assert.equal(again.label, before.label);
    assert.ok(!again.neighbours.some((n) => ids.includes(n.id)));
    assertOneLineError(await app.inject({ method: 'DELETE', url: '/kb/pairs/mine-0', headers: auth }), 404);
    assertOneLineError(await app.inject({ method: 'GET', url: '/kb/pairs/mine-0/thumbnail' }), 404);
  });

  it('serialises concurrent writes: every add lands while predictions run, none is lost', async () => {
    const size0 = fx.deps.kb.size;
    const gen0 = fx.deps.kb.manifest.generation;
    const pictures = await Promise.all(Array.from({ length: 12 }, (_, i) => fx.png('red', 'stripe', 100 + i)));
    const adds = pictures.map((p, i) => postJson(app, '/kb/pairs', { image: b64(p), text: `red stripe ${i}`, label: 'red', id: `load-${i}` }, auth));
    const reads = pictures.map((p) => postJson(app, '/predict', { image: b64(p) }));
    const results = await Promise.all([...adds, ...reads]);
    for (const r of results) assert.ok(r.statusCode === 200 || r.statusCode === 201, r.body);
    assert.equal(fx.deps.kb.size, size0 + 12);
    // one generation per transaction; additions waiting together may share one (group commit)
    const gen = fx.deps.kb.manifest.generation;
    assert.ok(gen > gen0 && gen <= gen0 + 12, `generation ${gen0} -> ${gen}`);
    for (let i = 0; i < 12; i++) {
      const s = S.SearchOut.parse(json(await app.inject({ method: 'GET', url: `/kb/search?text=${encodeURIComponent(`red stripe ${i}`)}&k=1` })));
      assert.equal(s.neighbours[0].id, `load-${i}`);
    }
    await Promise.all(pictures.map((_, i) => app.inject({ method: 'DELETE', url: `/kb/pairs/load-${i}`, headers: auth })));
    assert.equal(fx.deps.kb.size, size0);
  });

  it('pages through the pairs; stats, health, metrics and the OpenAPI document describe the service', async () => {
    const total = fx.deps.kb.size;
    const seen: string[] = [];
    for (let offset = 0; offset < total; offset += 5) {
      const page = S.PairsOut.parse(json(await app.inject({ method: 'GET', url: `/kb/pairs?offset=${offset}&limit=5` })));
      assert.equal(page.total, total);
      assert.ok(page.pairs.length <= 5);
      seen.push(...page.pairs.map((p) => p.id));
    }
    assert.equal(new Set(seen).size, total);

    const stats = S.StatsOut.parse(json(await app.inject({ method: 'GET', url: '/kb/stats' })));
    assert.equal(stats.pairs, total);
    assert.equal(stats.writable, true);
    assert.deepEqual(stats.model.classes, fx.classes);
    S.HealthOut.parse(json(await app.inject({ method: 'GET', url: '/healthz' })));

    const metrics = await app.inject({ method: 'GET', url: '/metrics' });
    assert.equal(metrics.statusCode, 200);
    assert.match(metrics.body, /retformer_http_requests_total\{route="\/predict",method="POST",status="200"\} \d+/);
    assert.match(metrics.body, /retformer_http_request_duration_seconds_bucket\{le="0.1",route="\/predict",method="POST"\} \d+/);
    assert.match(metrics.body, new RegExp(`retformer_kb_pairs ${total}`));
    assert.match(metrics.body, new RegExp(`retformer_kb_generation ${fx.deps.kb.manifest.generation}`));
    assert.match(metrics.body, /retformer_predict_batch_size_count [1-9]\d*/);
    assert.match(metrics.body, /retformer_model_info\{model="run-fake",variant="full",encoder="pixels-v1"\} 1/);

    const doc = json<{ openapi: string; paths: Record<string, Record<string, { requestBody?: { content: Record<string, unknown> } }>> }>(await app.inject({ method: 'GET', url: '/openapi.json' }));
    assert.equal(doc.openapi, '3.1.0');
    for (const [path, method] of [
      ['/predict', 'post'],
      ['/predict/batch', 'post'],
      ['/kb/search', 'get'],
      ['/kb/search', 'post'],
      ['/knn-service', 'post'],
      ['/kb/pairs', 'post'],
      ['/kb/pairs', 'get'],
      ['/kb/pairs/{id}', 'delete'],
      ['/kb/pairs/{id}/thumbnail', 'get'],
      ['/kb/stats', 'get'],
      ['/healthz', 'get'],
      ['/metrics', 'get'],
    ]) {
      assert.ok(doc.paths[path]?.[method], `${method} ${path} documented`);
    }
    assert.deepEqual(Object.keys(doc.paths['/predict'].post.requestBody!.content).sort(), ['application/json', 'image/*', 'multipart/form-data']);

    const page = await app.inject({ method: 'GET', url: '/' });
    assert.equal(page.statusCode, 200);
    assert.match(page.headers['content-type'] as string, /text\/html/);
    assert.match(page.headers['content-security-policy'] as string, /script-src 'self'/);
  });
});
