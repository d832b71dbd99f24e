import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import sharp from 'sharp';
import type { ImageSource } from '../src/encoders/types.ts';
import { buildApp } from '../src/serve/app.ts';
import * as S from '../src/serve/schemas.ts';
import { startServer } from '../src/serve/server.ts';
import { Rng } from '../src/util/rng.ts';
import { removeTempDirs } from './helpers/kb-fixtures.ts';
import { makeServeFixture, type ServeFixture } from './helpers/serve-fixtures.ts';
import { assertOneLineError, b64, multipartBody, postJson } from './helpers/serve-http.ts';

const TOKEN = 'hostile-test-token';
const auth = { authorization: `Bearer ${TOKEN}` };
const LIMITS = { maxUploadBytes: 64 * 1024, maxPixels: 512 * 512, maxBatch: 8 };

/** A PNG whose header claims width x height but whose data is one pixel: a decompression bomb's header. */
async function pngClaiming(width: number, height: number): Promise<Buffer> {
  const png = Buffer.from(await sharp({ create: { width: 1, height: 1, channels: 3, background: { r: 1, g: 2, b: 3 } } }).png().toBuffer());
  png.writeUInt32BE(width, 16); // IHDR data starts at 16: width, height
  png.writeUInt32BE(height, 20);
  png.writeUInt32BE(crc32(png.subarray(12, 29)), 29); // CRC over "IHDR" + 13 data bytes
  return png;
}

describe('HTTP service: hostile and heavy input', () => {
  let fx: ServeFixture;
  let app: FastifyInstance;
  const seenByEncoder: ImageSource[] = [];
  let good: Buffer;
  before(async () => {
    fx = await makeServeFixture({ n: 10 });
    const encoder = fx.deps.predictor.encoder;
    const embed = encoder.embedImages.bind(encoder);
    encoder.embedImages = (images, o) => {
      seenByEncoder.push(...images);
      return embed(images, o);
    };
    app = await buildApp(fx.deps, { token: TOKEN, limits: LIMITS });
    good = await fx.png('red', 'circle');
  });
  after(async () => {
    await app.close();
    removeTempDirs();
  });

  it('refuses uploads over the size limit (413), as JSON, multipart and raw bodies', async () => {
    const big = Buffer.concat([good, Buffer.alloc(LIMITS.maxUploadBytes)]); // a PNG with trailing bytes, too long
    assert.match(assertOneLineError(await postJson(app, '/predict', { image: b64(big) }), 413), /over the limit/);
    const form = await multipartBody({}, [{ field: 'image', name: 'big.png', bytes: big }]);
    assertOneLineError(await app.inject({ method: 'POST', url: '/predict', ...form }), 413);
    assertOneLineError(await app.inject({ method: 'POST', url: '/predict', payload: big, headers: { 'content-type': 'image/png' } }), 413);
    const tooMany = await postJson(app, '/predict/batch', { images: Array.from({ length: LIMITS.maxBatch + 1 }, () => b64(good)) });
    assertOneLineError(tooMany, 413);
  });

  it('refuses decompression bombs from the header, before decoding (413)', async () => {
    const bomb = await pngClaiming(60000, 60000); // 3.6 gigapixels announced, a few dozen bytes sent
    assert.ok(bomb.length < 200);
    const before = seenByEncoder.length;
    const msg = assertOneLineError(await postJson(app, '/predict', { image: b64(bomb) }), 413);
    assert.match(msg, /60000x60000 = 3600000000 pixels, over the limit of 262144/);
    assertOneLineError(await postJson(app, '/kb/pairs', { image: b64(bomb), text: 'x' }, auth), 413);
    // a real picture over the pixel limit is refused too, and neither reached the encoder
    const wide = await sharp({ create: { width: 1024, height: 1024, channels: 3, background: { r: 9, g: 9, b: 9 } } }).png().toBuffer();
    assertOneLineError(await postJson(app, '/predict', { image: b64(wide) }), 413);
    assert.equal(seenByEncoder.length, before);
  });

  it('judges bodies by content: non-images are 415 whatever their declared type or name', async () => {
    const text = Buffer.from('just some text, not a picture\n');
    const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"><image href="file:///etc/passwd"/></svg>');
    for (const bytes of [text, svg, Buffer.from('%PDF-1.7\n'), Buffer.from([0x50, 0x4b, 3, 4, 0, 0])]) {
      assertOneLineError(await postJson(app, '/predict', { image: b64(bytes) }), 415);
      assertOneLineError(await app.inject({ method: 'POST', url: '/predict', payload: bytes, headers: { 'content-type': 'image/png' } }), 415);
      const form = await multipartBody({}, [{ field: 'image', name: 'photo.jpg', bytes, type: 'image/jpeg' }]);
      assertOneLineError(await app.inject({ method: 'POST', url: '/predict', ...form }), 415);
    }
    // a real PNG declared as something else is judged by its bytes and accepted
    const res = await app.inject({ method: 'POST', url: '/predict', payload: good, headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(res.statusCode, 200, res.body);
    // a truncated PNG gets a one-line 4xx, not a crash
    const cut = good.subarray(0, Math.floor(good.length / 2));
    const r = await postJson(app, '/predict', { image: b64(cut) });
    assert.ok(r.statusCode >= 400 && r.statusCode < 500, r.body);
    assertOneLineError(r);
    // media types the service does not take at all
    assertOneLineError(await app.inject({ method: 'POST', url: '/predict', payload: 'hello', headers: { 'content-type': 'text/plain' } }), 415);
    assertOneLineError(await app.inject({ method: 'POST', url: '/kb/stats', payload: '{}', headers: { 'content-type': 'application/json' } }), 404);
  });

  it('answers malformed JSON, wrong dimensions, NaN and unknown ids with a one-line 4xx', async () => {
    const dim = fx.deps.predictor.encoder.dim;
    const cases: Array<[string, string, string | undefined, number, RegExp]> = [
      ['POST', '/predict', '{"image": "abc', 400, /JSON/],
      ['POST', '/predict', '[1,2,3]', 400, /expected a JSON object/],
      ['POST', '/predict', '{}', 400, /^send exactly one of: a picture \(file or "image"\) or an "embedding"$/],
      ['POST', '/predict', JSON.stringify({ image: b64(good), embedding: Array.from({ length: dim }, () => 0.1) }), 400, /^send exactly one of: a picture/],
      ['POST', '/predict/batch', '{}', 400, /^send exactly one of: picture files \("images"\), "images" \(base64\) or "embeddings"$/],
      ['POST', '/kb/search', JSON.stringify({ text: 'x', embedding: Array.from({ length: dim }, () => 0.1) }), 400, /^send exactly one of: a picture \(file or "image"\), an "embedding" or a "text"$/],
      ['POST', '/predict', JSON.stringify({ embedding: [1, 2, 3] }), 400, new RegExp(`3 values, expected ${dim}`)],
      ['POST', '/predict', `{"embedding": [${Array.from({ length: dim }, (_, i) => (i === 5 ? '1e999' : '0.1')).join(',')}]}`, 400, /embedding\.5/],
      ['POST', '/predict', JSON.stringify({ embedding: Array.from({ length: dim }, (_, i) => (i === 2 ? 'NaN' : 0.1)) }), 400, /embedding\.2/],
      ['POST', '/predict', JSON.stringify({ embedding: Array.from({ length: dim }, () => 0) }), 400, /zero/],
      ['POST', '/predict', JSON.stringify({ image: 'not base64 at all!' }), 400, /base64/],
      ['POST', '/predict', JSON.stringify({ image: b64(good), colour: 'red' }), 400, /Unrecognized key/],
      ['POST', '/predict', '{"__proto__": {"x": 1}}', 400, /./],
      ['POST', '/predict/batch', JSON.stringify({ embeddings: [[1, 2]] }), 400, /embeddings\.0 has 2 values/],
      ['GET', '/kb/search?text=', undefined, 400, /text/],
      ['GET', '/kb/search?text=x&k=0', undefined, 400, /k/],
      ['GET', '/kb/search?text=x&k=abc', undefined, 400, /k/],
      ['GET', '/kb/pairs?offset=-1', undefined, 400, /offset/],
      ['GET', '/kb/pairs?limit=100000', undefined, 400, /limit/],
      ['GET', '/kb/pairs/no-such-id/thumbnail', undefined, 404, /unknown id "no-such-id"/],
      ['POST', '/knn-service', JSON.stringify({ modality: 'image', num_images: 3 }), 400, /one of text, image/],
      ['POST', '/knn-service', JSON.stringify({ text: 'x', modality: 'audio', num_images: 3 }), 400, /modality/],
    ];
    for (const [method, url, body, status, pattern] of cases) {
      const res = await app.inject({ method: method as 'GET' | 'POST', url, ...(body !== undefined ? { payload: body, headers: { 'content-type': 'application/json' } } : {}) });
      assert.match(assertOneLineError(res, status), pattern, `${method} ${url} ${body?.slice(0, 60)}`);
    }
    assert.match(assertOneLineError(await app.inject({ method: 'DELETE', url: '/kb/pairs/no-such-id', headers: auth }), 404), /unknown id "no-such-id"/);
  });

  it('never reads or writes a path a request names', async () => {
    const before = seenByEncoder.length;
    // a path where a picture should be is just (bad) base64 text, never opened
    assertOneLineError(await postJson(app, '/predict', { image: '/etc/passwd' }));
    assertOneLineError(await postJson(app, '/predict', { image: join(fx.dir, 'images/p0.png') }));
    assert.ok(seenByEncoder.slice(before).every((x) => typeof x !== 'string'), 'the encoder only ever receives bytes');
    // thumbnails are found by KB row: an id that looks like a path is just an unknown id
    for (const url of ['/kb/pairs/..%2F..%2F..%2Fetc%2Fpasswd/thumbnail', '/kb/pairs/%2Fetc%2Fpasswd/thumbnail', '/web/..%2F..%2Fpackage.json', '/web/../../package.json']) {
      const res = await app.inject({ method: 'GET', url });
      assert.equal(res.statusCode, 404, url);
      assert.doesNotMatch(res.body, /"name": ?"retformer"|root:/);
    }
    // an added pair's picture is stored under the uploads folder by content hash, whatever its id says
    const evil = '../../../tmp/evil';
    const res = await postJson(app, '/kb/pairs', { image: b64(await fx.png('green', 'stripe', 5)), text: 'a green stripe', label: 'green', id: evil }, auth);
    assert.equal(res.statusCode, 201, res.body);
    const stored = readdirSync(fx.deps.uploadsDir);
    assert.equal(stored.length, 1);
    assert.match(stored[0], /^[0-9a-f]{64}\.png$/);
    const thumb = await app.inject({ method: 'GET', url: `/kb/pairs/${encodeURIComponent(evil)}/thumbnail` });
    assert.equal(thumb.statusCode, 200);
    assert.equal((await app.inject({ method: 'DELETE', url: `/kb/pairs/${encodeURIComponent(evil)}`, headers: auth })).statusCode, 200);
  });

  it('needs the token for writes (401), refuses writes when none is configured (403), and binds loopback by default', async () => {
    const body = { image: b64(good), text: 'a red circle', label: 'red' };
    assertOneLineError(await postJson(app, '/kb/pairs', body), 401);
    assertOneLineError(await postJson(app, '/kb/pairs', body, { authorization: 'Bearer wrong-token' }), 401);
    assertOneLineError(await postJson(app, '/kb/pairs', body, { authorization: TOKEN }), 401);
    assertOneLineError(await app.inject({ method: 'DELETE', url: '/kb/pairs/p0' }), 401);
    assert.equal(fx.deps.kb.size, 10, 'nothing was written');

    const fx2 = await makeServeFixture({ n: 5 });
    const server = await startServer({ runDir: fx2.dir, port: 0 }, fx2.deps);
    try {
      assert.equal(server.host, '127.0.0.1');
      const res = await fetch(`${server.url}/kb/pairs`, { method: 'POST', headers: { 'content-type': 'application/json', ...auth }, body: JSON.stringify(body) });
      assert.equal(res.status, 403);
      const stats = S.StatsOut.parse(await (await fetch(`${server.url}/kb/stats`)).json());
      assert.equal(stats.writable, false);
    } finally {
      await server.close();
    }
    assert.equal(fx2.deps.predictor.closed, true, 'closing the server closes the predictor');
  });

  it('survives a few hundred seeded malformed requests, then still answers a good one', async () => {
    const rng = new Rng(1234);
    const pick = <T>(xs: readonly T[]): T => xs[rng.int(xs.length)];
    const routes: Array<[string, 'POST' | 'GET' | 'DELETE']> = [
      ['/predict', 'POST'],
      ['/predict/batch', 'POST'],
      ['/kb/search', 'POST'],
      ['/kb/search', 'GET'],
      ['/knn-service', 'POST'],
      ['/kb/pairs', 'POST'],
      ['/kb/pairs', 'GET'],
      ['/kb/pairs/p1', 'DELETE'],
      ['/kb/pairs/p1/thumbnail', 'GET'],
    ];
    const types = ['application/json', 'image/png', 'application/octet-stream', 'multipart/form-data; boundary=xyz', 'multipart/form-data', 'text/plain', 'application/x-www-form-urlencoded', undefined];
    const junk = (): string | Buffer => {
      switch (rng.int(9)) {
        case 0:
          return Buffer.from(Array.from({ length: rng.int(300) }, () => rng.int(256)));
        case 1:
          return JSON.stringify({ image: b64(good).slice(0, rng.int(200)) });
        case 2:
          return `{"embedding": [${Array.from({ length: rng.int(200) }, () => pick(['1', '-0', '1e400', 'null', '"x"', 'true', '[]'])).join(',')}]}`;
        case 3:
          return '['.repeat(rng.int(5000));
        case 4:
          return JSON.stringify({ text: 'x'.repeat(rng.int(5000)), k: pick([0, -1, 1.5, 1e9, '7', null]) });
        case 5:
          return `--xyz\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n${'A'.repeat(rng.int(100))}${rng.int(2) ? '\r\n--xyz--\r\n' : ''}`;
        case 6:
          return Buffer.concat([good.subarray(0, rng.int(good.length)), Buffer.from(Array.from({ length: 20 }, () => rng.int(256)))]);
        case 7:
          return JSON.stringify({ modality: pick(['image', 'text', 7]), num_images: pick([1, 0, 'many', 1e6]), embedding_input: pick([[], [1], 'x', null]) });
        default:
          return pick(['', 'null', '0', '"str"', '{"a":', '{"image": null}', '{"images": [1,2]}']);
      }
    };
    const statuses = new Map<number, number>();
    for (let i = 0; i < 300; i++) {
      const type = pick(types);
      const [path, routeMethod] = pick(routes);
      const method = rng.next() < 0.9 ? routeMethod : pick(['POST', 'GET', 'DELETE', 'PUT'] as const);
      const withAuth = rng.next() < 0.5;
      const res = await app.inject({
        method,
        url: `${path}${rng.next() < 0.3 ? `?text=${encodeURIComponent(String(junk()).slice(0, 50))}&k=${rng.int(400) - 50}` : ''}`,
        payload: method === 'GET' ? undefined : junk(),
        headers: { ...(type ? { 'content-type': type } : {}), ...(withAuth ? auth : {}) },
      });
      statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
      assert.ok(res.statusCode < 500, `request ${i} (${method}) got ${res.statusCode}: ${res.body.slice(0, 200)}`);
      if (res.statusCode >= 400) assertOneLineError(res);
    }
    // the requests reached the handlers and were refused there, not just routed away
    assert.ok((statuses.get(400) ?? 0) + (statuses.get(415) ?? 0) > 150, `statuses: ${JSON.stringify([...statuses])}`);

    // raw garbage on real sockets: broken request lines and chunked encodings
    const server = await startServer({ runDir: fx.dir, port: 0, token: TOKEN, limits: LIMITS }, fx.deps);
    try {
      for (const raw of ['GARBAGE\r\n\r\n', 'POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\nzz\r\n{}\r\n0\r\n\r\n', `POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nContent-Type: application/json\r\n\r\n{"im`]) {
        await new Promise<void>((done) => {
          const s = connect(server.port, '127.0.0.1', () => s.end(raw));
          s.on('data', () => {});
          s.on('error', () => done());
          s.on('close', () => done());
          s.setTimeout(2000, () => s.destroy());
        });
      }
      const ok = await fetch(`${server.url}/predict`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image: b64(good) }) });
      assert.equal(ok.status, 200);
      assert.equal(S.PredictionOut.parse(await ok.json()).label, 'red');
    } finally {
      await server.app.close();
    }
  });
});
