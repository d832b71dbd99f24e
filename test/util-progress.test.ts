import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startProgress } from '../src/util/progress.ts';

function sink() {
  const lines: string[] = [];
  return { lines, isTTY: false, write: (t: string) => lines.push(t) };
}

describe('progress reporting off a terminal', () => {
  it('writes one summary line, and no redraws, when work ends before the interval', () => {
    const s = sink();
    const p = startProgress('embed', 10, { unit: 'img', sink: s, intervalMs: 60_000 });
    for (let i = 0; i < 10; i++) p.tick();
    p.stop();
    p.stop();
    assert.equal(s.lines.length, 1);
    assert.match(s.lines[0], /^embed: 10\/10 done in [\d.]+ s, [\d.]+ img\/s\n$/);
  });

  it('writes periodic lines with percentage and fields while work goes on', () => {
    const s = sink();
    const p = startProgress('epoch 1/2', 4, { unit: 'samples', sink: s, intervalMs: 0, fields: ['loss'] });
    p.tick(1, { loss: '2.50' });
    p.update(3, { loss: '1.25' });
    p.tick(); // reaching the total writes no periodic line: the summary follows
    p.stop();
    assert.equal(s.lines.length, 3);
    assert.match(s.lines[0], /^epoch 1\/2: 1\/4 \(25%\), [\d.]+ samples\/s loss 2\.50\n$/);
    assert.match(s.lines[1], /^epoch 1\/2: 3\/4 \(75%\), .* loss 1\.25\n$/);
    assert.match(s.lines[2], /^epoch 1\/2: 4\/4 done in .* loss 1\.25\n$/);
  });

  it('is silent when quiet', () => {
    const s = sink();
    const p = startProgress('x', 2, { sink: s, quiet: true, intervalMs: 0 });
    p.tick();
    p.stop();
    assert.deepEqual(s.lines, []);
  });
});
