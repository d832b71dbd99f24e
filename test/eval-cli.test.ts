import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { type CliResult, runCli } from './helpers/cli.ts';

const work = mkdtempSync(join(tmpdir(), 'retformer-eval-cli-'));
after(() => rmSync(work, { recursive: true, force: true }));

type Result = CliResult;

const cli = (args: string[]) => runCli(args, { cwd: work, env: { RETFORMER_QUIET: '1' } });

/** The user-facing error line (`retformer: ...`), asserting it is the only thing on stderr. */
function errorLine(r: Result): string {
  assert.notEqual(r.code, 0, `expected failure, got ${r.stdout}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one-line error expected, got:\n${r.stderr}`);
  return lines[0];
}

describe('eval / predict / compare command line', () => {
  const csv = join(work, 'test.csv');
  writeFileSync(csv, 'path,label\na.png,x\n');

  it('every command has help naming its flags', async () => {
    const [ev, pr, cmp] = await Promise.all([cli(['eval', '--help']), cli(['predict', '--help']), cli(['compare', '--help'])]);
    for (const flag of ['--run', '--test', '--many', '--few', '--json']) assert.ok(ev.stdout.includes(flag), `eval --help lacks ${flag}`);
    for (const flag of ['--run', '--image', '--top', '--json']) assert.ok(pr.stdout.includes(flag), `predict --help lacks ${flag}`);
    for (const flag of ['--train', '--test', '--kb', '--out', '--config', '--epochs', '--k', '--jobs', '--variants', '--seed', '--json']) {
      assert.ok(cmp.stdout.includes(flag), `compare --help lacks ${flag}`);
    }
  });

  it('argument errors are one line and exit non-zero', async () => {
    const results = await Promise.all([
      cli(['eval', '--test', csv]),
      cli(['eval', '--run', join(work, 'no-run'), '--test', csv]),
      cli(['eval', '--run', work, '--test', csv, '--many', 'lots']),
      cli(['eval', '--run', work, '--test', csv, '--many', '10', '--few', '20']),
      cli(['predict', '--run', work, '--image', join(work, 'missing.png')]),
      cli(['predict', '--run', work, '--image', csv, '--top', '0']),
      cli(['compare', '--train', csv, '--test', csv, '--kb', work, '--out', join(work, 'o'), '--variants', 'full,bogus']),
      cli(['compare', '--train', csv, '--test', csv, '--kb', work, '--out', join(work, 'o'), '--jobs', '1.5']),
      cli(['compare', '--train', join(work, 'nope.csv'), '--test', csv, '--kb', work, '--out', join(work, 'o')]),
      cli(['compare', '--train', csv, '--test', csv, '--kb', work, '--out', join(work, 'o'), '--k-method', 'knn-vote=4,bogus=2']),
      cli(['compare', '--train', csv, '--test', csv, '--kb', work, '--out', join(work, 'o'), '--k-method', 'knn-vote']),
      cli(['compare', '--train', csv, '--test', csv, '--kb', work, '--out', join(work, 'o'), '--k-method', 'image-only=0']),
    ]);
    // commander's own usage errors: its message plus the project's "(run with --help for usage)" hint
    assert.notEqual(results[0].code, 0);
    assert.match(results[0].stderr, /required option '--run <dir>' not specified/);
    const lines = results.map((r, i) => (i === 0 ? '' : errorLine(r)));
    assert.match(lines[1], /^retformer: .*no-run: run folder not found \(--run\)$/);
    assert.match(lines[2], /^retformer: --many: expected a non-negative number, got "lots"$/);
    assert.match(lines[3], /^retformer: --few \(20\) must not exceed --many \(10\)$/);
    assert.match(lines[4], /^retformer: .*missing\.png: image file not found \(--image\)$/);
    assert.match(lines[5], /^retformer: --top: expected a positive integer, got "0"$/);
    assert.match(lines[6], /^retformer: --variants: unknown "bogus" \(choose from mlp-only, knn-vote, /);
    assert.match(lines[7], /^retformer: --jobs: expected a positive integer, got "1\.5"$/);
    assert.match(lines[8], /^retformer: .*nope\.csv: not found \(--train\)$/);
    assert.match(lines[9], /^retformer: --k-method: unknown "bogus" \(choose from mlp-only, knn-vote, /);
    assert.match(lines[10], /^retformer: --k-method: "knn-vote" is not key=n$/);
    assert.match(lines[11], /^retformer: --k-method: expected a positive integer, got "0"$/);
  });
});
