import { readFileSync } from 'node:fs';
import { STATUS_CODES } from 'node:http';
import { basename } from 'node:path';
import multipart from '@fastify/multipart';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import type { Prediction } from '../infer/types.ts';
import type { Neighbour } from '../kb/types.ts';
import { RetformerError } from '../util/errors.ts';
import { tokenMatches } from './auth.ts';
import { PredictBatcher, type Query } from './batcher.ts';
import { HttpError, oneLine, requireExactlyOne, statusOfLibraryError } from './errors.ts';
import { ReadWriteGate } from './gate.ts';
import { checkImage, decodeBase64Image } from './images.ts';
import { KbService } from './kb-service.ts';
import { installMetrics } from './metrics.ts';
import { addRoute, openApiDocument, type RouteSpec } from './routing.ts';
import * as S from './schemas.ts';
import { DEFAULT_LIMITS, type ServeDeps, type ServeLimits, type ServeOptions } from './types.ts';

const WEB_FILES: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/web/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/web/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
};
const CSP = "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

export const thumbnailUrl = (id: string) => `/kb/pairs/${encodeURIComponent(id)}/thumbnail`;

/** A unit-length copy of a client's embedding; wrong dimension or a zero vector is a 400. */
function queryVector(values: readonly number[], dim: number, what: string): Float32Array {
  if (values.length !== dim) throw new HttpError(400, `${what} has ${values.length} values, expected ${dim} (the run's encoder dimension)`);
  let s = 0;
  for (const x of values) s += x * x;
  if (!(s > 0) || !Number.isFinite(s)) throw new HttpError(400, `${what} has zero or non-finite length`);
  const inv = 1 / Math.sqrt(s);
  return Float32Array.from(values, (x) => x * inv);
}

/**
 * The HTTP service: predictions with their evidence, KB search (also in clip-retrieval's
 * /knn-service shape), live KB edits behind a token, stats, health, metrics, the OpenAPI document
 * and the web page. `app.close()` lets in-flight requests finish, waits for queued KB writes and
 * closes the predictor and the KB.
 */
export async function buildApp(deps: ServeDeps, options: ServeOptions = {}): Promise<FastifyInstance> {
  const limits: ServeLimits = { ...DEFAULT_LIMITS, ...options.limits };
  const { predictor, kb } = deps;
  const encoder = predictor.encoder;
  if (predictor.kb !== kb) throw new RetformerError('serve: the predictor must use the served KB instance (pass it as kbInstance)');
  const modelId = deps.modelId ?? basename(predictor.runDir);
  const gate = new ReadWriteGate();
  const kbs = new KbService({ kb, encoder, gate, uploadsDir: deps.uploadsDir, maxPixels: limits.maxPixels, writes: deps.writes?.(kb) });
  const b64 = (n: number) => Math.ceil((n * 4) / 3) + 64 * 1024;

  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: b64(limits.maxUploadBytes),
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    return503OnClosing: true,
  });
  app.removeContentTypeParser('text/plain');
  await app.register(multipart, {
    limits: { fileSize: limits.maxUploadBytes, files: limits.maxBatch, fields: 16, fieldSize: 64 * 1024, parts: limits.maxBatch + 16, headerPairs: 64 },
  });
  for (const type of ['application/octet-stream', /^image\/[\w.+-]+$/i]) {
    app.addContentTypeParser(type, { parseAs: 'buffer', bodyLimit: limits.maxUploadBytes }, (_req, body, done) => done(null, body));
  }

  const { registry, observeBatch } = installMetrics(app, {
    kbSize: () => kb.size,
    kbGeneration: () => kb.manifest.generation,
    pendingWrites: () => kbs.pendingWrites,
    model: { id: modelId, variant: predictor.config.variant, encoder: encoder.id },
  });
  const batcher = new PredictBatcher({ encoder, gate, maxBatch: limits.maxBatch, classifyEmbeddings: (e, o) => predictor.classifyEmbeddings(e, o), onBatch: observeBatch });

  // graceful shutdown: once closing, every answer ends its connection (an in-flight request's
  // keep-alive socket would otherwise hold the process open for the keep-alive timeout)
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onSend', async (_request, reply, payload) => {
    reply.header('x-content-type-options', 'nosniff');
    if (closing) reply.header('connection', 'close');
    return payload;
  });
  app.setErrorHandler((err, request, reply) => {
    let status = 500;
    let message = 'internal error';
    if (err instanceof HttpError) [status, message] = [err.statusCode, err.message];
    else if (err instanceof RetformerError) [status, message] = [statusOfLibraryError(err), err.message];
    else if (typeof (err as { statusCode?: number }).statusCode === 'number' && (err as { statusCode: number }).statusCode < 500) {
      [status, message] = [(err as { statusCode: number }).statusCode, (err as Error).message];
    }
    if (status >= 500) request.log.error({ err }, 'request failed');
    reply.code(status).send({ statusCode: status, error: STATUS_CODES[status] ?? 'Error', message: oneLine(message) });
  });
  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send({ statusCode: 404, error: 'Not Found', message: `no route ${request.method} ${request.url.split('?')[0].slice(0, 100)}` });
  });
  app.addHook('onClose', async () => {
    await kbs.close();
    await predictor.close();
    await kb.close();
  });

  const authorize = (request: FastifyRequest) => {
    if (!options.token) throw new HttpError(403, 'KB writes are disabled: start the server with --token or RETFORMER_TOKEN');
    if (!tokenMatches(options.token, request.headers.authorization)) throw new HttpError(401, 'KB writes need "Authorization: Bearer <token>" with the token given at start-up');
  };

  const kbState = () => ({ generation: kb.manifest.generation, size: kb.size });
  const pairOut = (n: { id: string; row: number; text: string; label?: string }) => ({ id: n.id, row: n.row, text: n.text, ...(n.label !== undefined ? { label: n.label } : {}), thumbnail: thumbnailUrl(n.id) });
  const neighbourOut = (n: Neighbour) => ({ ...pairOut(n), similarity: n.similarity });
  const predictionOut = (p: Prediction, abstainBelow: number | undefined): S.PredictionOutT => {
    const abstained = abstainBelow !== undefined && p.probability < abstainBelow;
    return {
      label: abstained ? null : p.className,
      index: abstained ? null : p.label,
      probability: p.probability,
      ...(abstainBelow === undefined ? {} : { abstained }),
      top: p.top.map((t) => ({ label: t.className, index: t.label, probability: t.probability })),
      branches: { image: p.branches.image, ...(p.branches.retrieval !== undefined ? { retrieval: p.branches.retrieval } : {}) },
      ...(p.gate !== undefined ? { gate: p.gate } : {}),
      neighbours: p.neighbours.map((n, j) => ({ ...neighbourOut(n), attention: p.attention[j] ?? 0 })).sort((a, b) => b.attention - a.attention || b.similarity - a.similarity),
      kb: kbState(),
    };
  };
  const imageQuery = async (bytes: Uint8Array, what: string): Promise<Query> => ({ image: (await checkImage(bytes, limits, what)).bytes });
  const classifyAll = async (queries: Query[], top: number) => Promise.all(queries.map((q) => batcher.classify(q, top)));

  const routes: RouteSpec[] = [];
  const route = <Q extends import('zod').ZodType, P extends import('zod').ZodType, B extends import('zod').ZodType>(spec: RouteSpec<Q, P, B>) => {
    routes.push(spec as unknown as RouteSpec);
    addRoute(app, spec, authorize);
  };

  route({
    method: 'POST',
    url: '/predict',
    summary: 'Classify one picture (JSON base64, multipart file "image", or a raw image body) or one embedding',
    tag: 'predict',
    body: S.PredictBody,
    uploads: 'one',
    responses: { 200: S.PredictionOut },
    handler: async ({ body, files }) => {
      requireExactlyOne([files.length > 0, body.image !== undefined, body.embedding !== undefined], 'a picture (file or "image") or an "embedding"');
      const query: Query = body.embedding ? { embedding: queryVector(body.embedding, encoder.dim, 'embedding') } : await imageQuery(files[0] ?? decodeBase64Image(body.image!), 'image');
      const [p] = await classifyAll([query], body.top ?? 5);
      return predictionOut(p, body.abstainBelow);
    },
  });

  route({
    method: 'POST',
    url: '/predict/batch',
    summary: `Classify several pictures or embeddings (at most ${limits.maxBatch})`,
    tag: 'predict',
    body: S.PredictBatchBody,
    uploads: 'many',
    bodyLimit: b64(limits.maxUploadBytes) * 4,
    responses: { 200: S.PredictBatchOut },
    handler: async ({ body, files }) => {
      requireExactlyOne([files.length > 0, body.images !== undefined, body.embeddings !== undefined], 'picture files ("images"), "images" (base64) or "embeddings"');
      let queries: Query[];
      if (body.embeddings) queries = body.embeddings.map((e, i) => ({ embedding: queryVector(e, encoder.dim, `embeddings.${i}`) }));
      else {
        const raw = files.length > 0 ? files : body.images!.map((t, i) => decodeBase64Image(t, `images.${i}`));
        queries = await Promise.all(raw.map((bytes, i) => imageQuery(bytes, `images.${i}`)));
      }
      if (queries.length > limits.maxBatch) throw new HttpError(413, `${queries.length} queries in one batch, over the limit of ${limits.maxBatch}`);
      return { predictions: (await classifyAll(queries, body.top ?? 5)).map((p) => predictionOut(p, body.abstainBelow)) };
    },
  });

  route({
    method: 'GET',
    url: '/kb/search',
    summary: 'KB pairs nearest to a text (text index by default; modality=image searches pictures)',
    tag: 'kb',
    query: S.SearchQuery,
    responses: { 200: S.SearchOut },
    handler: async ({ query }) => {
      const modality = query.modality ?? 'text';
      const hits = await kbs.search(await kbs.embedText(query.text), query.k, modality);
      return { modality, k: query.k, kb: kbState(), neighbours: hits.map(neighbourOut) };
    },
  });

  route({
    method: 'POST',
    url: '/kb/search',
    summary: 'KB pairs nearest to a picture, an embedding or a text',
    tag: 'kb',
    body: S.SearchBody,
    uploads: 'one',
    responses: { 200: S.SearchOut },
    handler: async ({ body, files }) => {
      requireExactlyOne([files.length > 0, body.image !== undefined, body.embedding !== undefined, body.text !== undefined], 'a picture (file or "image"), an "embedding" or a "text"');
      const k = body.k ?? 10;
      let vector: Float32Array;
      if (body.text !== undefined) vector = await kbs.embedText(body.text);
      else if (body.embedding) vector = queryVector(body.embedding, encoder.dim, 'embedding');
      else vector = await kbs.embedImage(await checkImage(files[0] ?? decodeBase64Image(body.image!), limits));
      const modality = body.modality ?? (body.text !== undefined ? 'text' : 'image');
      return { modality, k, kb: kbState(), neighbours: (await kbs.search(vector, k, modality)).map(neighbourOut) };
    },
  });

  route({
    method: 'POST',
    url: '/knn-service',
    summary: "clip-retrieval's k-NN service: text, image (base64) or embedding_input in; id, similarity, caption, url, image_path out",
    tag: 'clip-retrieval',
    body: S.KnnServiceBody,
    responses: { 200: S.KnnServiceOut },
    handler: async ({ body }) => {
      if (body.image_url) throw new HttpError(400, 'image_url is not supported: this service never downloads; send the picture as base64 "image"');
      if (body.indice_name && body.indice_name !== modelId) throw new HttpError(404, `unknown indice_name "${body.indice_name}" (this service has "${modelId}", see /indices-list)`);
      let vector: Float32Array;
      if (body.text) vector = await kbs.embedText(body.text);
      else if (body.image) vector = await kbs.embedImage(await checkImage(decodeBase64Image(body.image), limits));
      else if (body.embedding_input) vector = queryVector(body.embedding_input, encoder.dim, 'embedding_input');
      else throw new HttpError(400, 'must fill one of text, image and embedding_input');
      const hits = await kbs.search(vector, Math.max(body.num_images, body.num_result_ids ?? 0), body.modality);
      return hits.slice(0, body.num_images).map((n) => ({
        id: n.row,
        similarity: n.similarity,
        caption: n.text,
        url: thumbnailUrl(n.id),
        image_path: n.source,
        pair_id: n.id,
        ...(n.label !== undefined ? { label: n.label } : {}),
      }));
    },
  });

  route({
    method: 'GET',
    url: '/indices-list',
    summary: "clip-retrieval's index list (one index: this model's KB)",
    tag: 'clip-retrieval',
    responses: { 200: S.IndicesOut },
    handler: async () => [modelId],
  });

  route({
    method: 'POST',
    url: '/kb/pairs',
    summary: 'Add an (image, text [, label]) pair to the KB; the next prediction sees it',
    tag: 'kb',
    auth: true,
    body: S.AddPairBody,
    uploads: 'one',
    responses: { 201: S.AddPairOut },
    handler: async ({ body, files }, _request, reply) => {
      if ((files.length > 0) === (body.image !== undefined)) throw new HttpError(400, 'send the picture once: a file "image" or a base64 "image"');
      const image = await checkImage(files[0] ?? decodeBase64Image(body.image!), limits);
      const { id } = await kbs.add({ image, text: body.text, label: body.label, id: body.id, allowNewLabel: body.allowNewLabel });
      reply.code(201);
      return { id, kb: kbState() };
    },
  });

  route({
    method: 'DELETE',
    url: '/kb/pairs/:id',
    summary: 'Remove a pair from the KB by id',
    tag: 'kb',
    auth: true,
    params: S.PairIdParams,
    responses: { 200: S.RemovePairOut },
    handler: async ({ params }) => {
      await kbs.remove(params.id);
      return { id: params.id, removed: true as const, kb: kbState() };
    },
  });

  route({
    method: 'GET',
    url: '/kb/pairs',
    summary: 'Page through the live pairs in row order',
    tag: 'kb',
    query: S.PairsQuery,
    responses: { 200: S.PairsOut },
    handler: async ({ query }) => {
      const generation = kb.manifest.generation;
      const page = await kbs.list(query.offset, query.limit);
      return { total: page.total, offset: query.offset, limit: query.limit, generation, pairs: page.pairs.map(pairOut) };
    },
  });

  route({
    method: 'GET',
    url: '/kb/pairs/:id/thumbnail',
    summary: "A pair's stored picture as a small PNG (looked up by KB row, never by a path)",
    tag: 'kb',
    params: S.PairIdParams,
    responses: { 200: { contentType: 'image/png', description: 'PNG, at most 160 px' } },
    handler: async ({ params }, _request, reply) => {
      const png = await kbs.thumbnail(params.id);
      reply.type('image/png').header('cache-control', 'private, max-age=60');
      return png;
    },
  });

  route({
    method: 'GET',
    url: '/kb/stats',
    summary: 'KB size, generation, encoder, and the served model',
    tag: 'kb',
    responses: { 200: S.StatsOut },
    handler: async () => ({
      pairs: kb.size,
      generation: kb.manifest.generation,
      dim: kb.dim,
      dtype: String(kb.manifest.dtype),
      encoder: kb.encoderId,
      pendingWrites: kbs.pendingWrites,
      writable: options.token !== undefined && options.token !== '',
      model: { id: modelId, variant: predictor.config.variant, k: predictor.config.k, classes: [...predictor.classes] },
    }),
  });

  route({
    method: 'GET',
    url: '/healthz',
    summary: 'Liveness: the KB answers',
    tag: 'ops',
    responses: { 200: S.HealthOut },
    handler: async () => ({ status: 'ok' as const, generation: kb.manifest.generation, pairs: kb.size }),
  });

  route({
    method: 'GET',
    url: '/metrics',
    summary: 'Prometheus metrics',
    tag: 'ops',
    responses: { 200: { contentType: 'text/plain', description: 'Prometheus text format' } },
    handler: async (_input, _request, reply) => {
      reply.type(registry.contentType);
      return registry.metrics();
    },
  });

  const doc = openApiDocument(routes, {
    title: 'retformer',
    version: '0.1.0',
    description: 'Retrieval-augmented image recognition: predictions with the KB evidence behind them, and live KB edits.',
  });
  app.get('/openapi.json', async () => doc);

  const webDir = new URL('./web/', import.meta.url);
  for (const [url, { file, type }] of Object.entries(WEB_FILES)) {
    const bytes = readFileSync(new URL(file, webDir));
    app.get(url, async (_request, reply) => {
      reply.type(type).header('content-security-policy', CSP).header('cache-control', 'no-cache');
      return bytes;
    });
  }
  return app;
}
