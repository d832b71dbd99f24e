import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mapConcurrent, Slots } from '../src/util/concurrency.ts';

const tick = (ms: number) => new Promise((done) => setTimeout(done, ms));

test('mapConcurrent keeps order and never has more than `concurrency` in flight', async () => {
  let inFlight = 0;
  let peak = 0;
  const out = await mapConcurrent([5, 1, 4, 2, 3], 2, async (x) => {
    peak = Math.max(peak, ++inFlight);
    await tick(x);
    inFlight--;
    return x * 10;
  });
  assert.deepEqual(out, [50, 10, 40, 20, 30]);
  assert.equal(peak, 2);
});

test('Slots: pools sharing them hold at most `size` tasks together, served in arrival order, a failure frees its slot', async () => {
  const slots = new Slots(2);
  let inFlight = 0;
  let peak = 0;
  const started: string[] = [];
  const task = (name: string, fail = false) =>
    slots.run(async () => {
      started.push(name);
      peak = Math.max(peak, ++inFlight);
      await tick(5);
      inFlight--;
      if (fail) throw new Error(`${name} failed`);
      return name;
    });
  // two pools of three, each asking for all its tasks at once (as trainAll does with shared slots)
  const poolA = Promise.allSettled([task('a1', true), task('a2'), task('a3')]);
  const poolB = Promise.allSettled([task('b1'), task('b2'), task('b3')]);
  const [a, b] = await Promise.all([poolA, poolB]);
  assert.equal(peak, 2);
  assert.deepEqual(started, ['a1', 'a2', 'a3', 'b1', 'b2', 'b3']);
  assert.equal(a[0].status, 'rejected');
  assert.deepEqual(
    b.map((r) => r.status),
    ['fulfilled', 'fulfilled', 'fulfilled'],
  );
  assert.throws(() => new Slots(0), /positive integer/);
});
