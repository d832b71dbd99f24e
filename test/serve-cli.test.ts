import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as S from '../src/serve/schemas.ts';
import { removeTempDirs } from './helpers/kb-fixtures.ts';
import { makeTrainedServeFixture, type TrainedServeFixture } from './helpers/serve-fixtures.ts';

/** `retformer serve` as a process: flags, loopback default, structured logs, graceful SIGTERM. */
const BIN = fileURLToPath(new URL('../bin/retformer.js', import.meta.url));

function cli(args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], (err, _stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stderr }));
  });
}

/** Start `retformer serve` and resolve with its URL once it listens. */
function serve(args: string[], env: Record<string, string> = {}): Promise<{ child: ChildProcess; url: string; stdout: () => string; stderr: () => string; exited: Promise<number | null> }> {
  const child = spawn(process.execPath, [BIN, 'serve', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  child.stdout!.on('data', (d) => {
    out += d;
  });
  return new Promise((resolve, reject) => {
    child.stderr!.on('data', (d) => {
      err += d;
      const m = /listening on (http:\/\/\S+)/.exec(err);
      if (m) resolve({ child, url: m[1], stdout: () => out, stderr: () => err, exited });
    });
    void exited.then((code) => reject(new Error(`serve exited (${code}) before listening: ${err}`)));
  });
}

describe('retformer serve (the process)', () => {
  let fx: TrainedServeFixture;
  before(async () => {
    fx = await makeTrainedServeFixture();
  });
  after(() => removeTempDirs());

  it('refuses bad flags with one line', async () => {
    const badPort = await cli(['serve', '--run', fx.runDir, '--port', '70000']);
    assert.equal(badPort.code, 1);
    assert.match(badPort.stderr, /^retformer: --port: .*\n$/);
    const noRun = await cli(['serve', '--run', `${fx.dir}/nope`, '--port', '0']);
    assert.match(noRun.stderr, /^retformer: .*nope: run folder not found \(--run\)\n$/);
    const shortToken = await cli(['serve', '--run', fx.runDir, '--port', '0', '--token', 'abc']);
    assert.match(shortToken.stderr, /^retformer: --token: use at least 8 characters\n$/);
  });

  it('binds loopback, logs requests as JSON, takes the token from RETFORMER_TOKEN, and finishes in-flight work on SIGTERM', async () => {
    const s = await serve(['--run', fx.runDir, '--port', '0'], { RETFORMER_TOKEN: 'env-token-123' });
    let exitCode: number | null = null;
    try {
      assert.match(s.url, /^http:\/\/127\.0\.0\.1:\d+$/);
      const stats = S.StatsOut.parse(await (await fetch(`${s.url}/kb/stats`)).json());
      assert.equal(stats.writable, true);
      const png = await fx.png('blue', 'circle', 3);
      const added = await fetch(`${s.url}/kb/pairs`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer env-token-123' }, body: JSON.stringify({ image: png.toString('base64'), text: 'a blue circle', label: 'blue', id: 'via-env-token' }) });
      assert.equal(added.status, 201);

      // a big batch in flight when SIGTERM arrives still gets its answer
      const pictures = await Promise.all(Array.from({ length: 48 }, (_, i) => fx.png('red', 'stripe', 500 + i)));
      const inFlight = fetch(`${s.url}/predict/batch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ images: pictures.map((p) => p.toString('base64')) }) });
      const seen = Date.now();
      while (!/"url":"\/predict\/batch"/.test(s.stdout()) && Date.now() - seen < 20_000) await new Promise((r) => setTimeout(r, 5));
      s.child.kill('SIGTERM');
      const res = await inFlight;
      assert.equal(res.status, 200);
      assert.equal(S.PredictBatchOut.parse(await res.json()).predictions.length, 48);
      exitCode = await s.exited;
    } finally {
      if (exitCode === null) s.child.kill('SIGKILL');
    }
    assert.equal(exitCode, 0);
    assert.match(s.stderr(), /SIGTERM: finishing in-flight requests and closing the KB\nretformer serve: stopped\n/);
    const logs = s
      .stdout()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { msg: string; reqId?: string; req?: { url: string }; res?: { statusCode: number }; responseTime?: number });
    const done = logs.filter((l) => l.msg === 'request completed');
    assert.ok(done.length >= 3, 'one structured line per completed request');
    assert.ok(done.every((l) => typeof l.reqId === 'string' && typeof l.responseTime === 'number' && typeof l.res?.statusCode === 'number'));
    assert.ok(!s.stdout().includes('env-token-123'), 'the token never reaches the logs');
    await assert.rejects(fetch(`${s.url}/healthz`), 'stopped for good');
  });
});
