import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classPrompt, knnVote, retrievalPurity, voteOf, zeroShot } from '../src/eval/baselines.ts';
import type { EmbeddedPair } from '../src/kb/types.ts';
import { MemoryKnowledgeBase } from '../src/kb/memory.ts';
import { encoderDescriptor, fakeEncoder, neighbour, stack, unit } from './helpers/eval-fakes.ts';

/** A unit vector at cosine `c` from e0 (in the e0/e1 plane, or e0/e2 with `plane` 2). */
function atCos(c: number, plane: 1 | 2 = 1): Float32Array {
  const v = [c, 0, 0];
  v[plane] = Math.sqrt(1 - c * c);
  return unit(v);
}

function pair(id: string, label: string | undefined, image: Float32Array): EmbeddedPair {
  return { meta: { id, text: `text of ${id}`, source: `/kb/${id}.png`, ...(label === undefined ? {} : { label }) }, imageVector: image, textVector: image };
}

const classes = ['alpha', 'beta', 'gamma'];
const e0 = unit([1, 0, 0]);

describe('knnVote', () => {
  it('the majority of the k neighbours wins over the single nearest one', async () => {
    const kb = new MemoryKnowledgeBase(encoderDescriptor(3), [
      pair('a1', 'alpha', atCos(0.99)),
      pair('b1', 'beta', atCos(0.9)),
      pair('b2', 'beta', atCos(0.85, 2)),
      pair('b3', 'beta', atCos(0.8)),
      pair('g1', 'gamma', atCos(-0.5)),
    ]);
    const [pred1] = await knnVote(kb, e0, classes, { k: 1, encoderId: 'fake-encoder' });
    const [pred4] = await knnVote(kb, e0, classes, { k: 4, encoderId: 'fake-encoder' });
    assert.equal(pred1, 0);
    assert.equal(pred4, 1);
  });

  it('breaks a tie in votes by the summed similarity, not by the nearest neighbour', async () => {
    // alpha: 0.99 + 0.50 = 1.49; beta: 0.90 + 0.80 = 1.70 -> beta, although alpha holds the nearest pair.
    const kb = new MemoryKnowledgeBase(encoderDescriptor(3), [
      pair('a1', 'alpha', atCos(0.99)),
      pair('a2', 'alpha', atCos(0.5)),
      pair('b1', 'beta', atCos(0.9)),
      pair('b2', 'beta', atCos(0.8, 2)),
    ]);
    const preds = await knnVote(kb, stack([e0, e0]), classes, { k: 4, encoderId: 'fake-encoder', batchSize: 1 });
    assert.deepEqual(preds, [1, 1]);
  });

  it('answers every query in order across batches', async () => {
    const kb = new MemoryKnowledgeBase(encoderDescriptor(3), [
      pair('a', 'alpha', unit([1, 0, 0])),
      pair('b', 'beta', unit([0, 1, 0])),
      pair('g', 'gamma', unit([0, 0, 1])),
    ]);
    const queries = stack([unit([0, 0, 1]), unit([1, 0.1, 0]), unit([0, 1, 0.1]), unit([0.1, 0, 1])]);
    const seen: number[] = [];
    const preds = await knnVote(kb, queries, classes, { k: 1, encoderId: 'fake-encoder', batchSize: 3, onProgress: (d) => seen.push(d) });
    assert.deepEqual(preds, [2, 0, 1, 2]);
    assert.deepEqual(seen, [3, 4]);
  });

  it('ignores labels that are not classes and falls back when nothing votes', async () => {
    const kb = new MemoryKnowledgeBase(encoderDescriptor(3), [pair('x', 'not-a-class', e0), pair('y', 'beta', unit([0, 1, 0]))]);
    assert.deepEqual(await knnVote(kb, e0, classes, { k: 1, encoderId: 'fake-encoder', fallbackClass: 2 }), [2]);
    assert.deepEqual(await knnVote(kb, e0, classes, { k: 2, encoderId: 'fake-encoder', fallbackClass: 2 }), [1]);
  });

  it('leaves out the query\'s own pair (same source) and still votes with k others', async () => {
    // the query is the picture of a1 itself (a validation row held out of a KB built from its training CSV):
    // with its own pair the k = 3 nearest are a1, a2, b1 -> alpha 2-1; without it a2, b1, b2 -> beta 2-1
    const kb = new MemoryKnowledgeBase(encoderDescriptor(3), [
      pair('a1', 'alpha', e0),
      pair('a2', 'alpha', atCos(0.9)),
      pair('b1', 'beta', atCos(0.85, 2)),
      pair('b2', 'beta', atCos(0.8)),
    ]);
    assert.deepEqual(await knnVote(kb, e0, classes, { k: 3, encoderId: 'fake-encoder' }), [0]);
    assert.deepEqual(await knnVote(kb, stack([e0, e0]), classes, { k: 3, encoderId: 'fake-encoder', sources: ['/kb/a1.png', '/elsewhere.png'], batchSize: 1 }), [1, 0]);
  });

  it('refuses a KB without labels with a clear error', async () => {
    const kb = new MemoryKnowledgeBase(encoderDescriptor(3), [pair('x', undefined, e0), pair('y', undefined, unit([0, 1, 0]))]);
    await assert.rejects(knnVote(kb, e0, classes, { k: 2, encoderId: 'fake-encoder' }), /needs a knowledge base whose pairs have labels/);
  });

  it('refuses queries from another encoder and of the wrong width', async () => {
    const kb = new MemoryKnowledgeBase(encoderDescriptor(3), [pair('a', 'alpha', e0)]);
    await assert.rejects(knnVote(kb, e0, classes, { k: 1, encoderId: 'other' }), /encoder/);
    await assert.rejects(knnVote(kb, new Float32Array(4), classes, { k: 1, encoderId: 'fake-encoder' }), /not a multiple/);
  });
});

describe('voteOf', () => {
  const index = new Map(classes.map((c, i) => [c, i]));
  it('equal votes and equal similarity go to the lower class index', () => {
    assert.equal(voteOf([neighbour(0, 'gamma', 0.5), neighbour(1, 'beta', 0.5)], index, 0), 1);
  });
  it('neighbours without labels do not vote', () => {
    assert.equal(voteOf([neighbour(0, undefined, 0.9), neighbour(1, undefined, 0.9), neighbour(2, 'gamma', 0.1)], index, 0), 2);
    assert.equal(voteOf([], index, 1), 1);
  });
});

describe('zeroShot', () => {
  it('embeds one prompt per class from its name and picks the nearest by cosine', async () => {
    const prompts: Record<string, Float32Array> = {
      'face smiling': unit([1, 0, 0]),
      'animal mammal': unit([0, 1, 0]),
      'food fruit': unit([0, 0, 1]),
    };
    const encoder = fakeEncoder(3, new Map(), (t) => prompts[t] ?? new Float32Array(3));
    const names = ['face-smiling', 'animal_mammal', 'food-fruit'];
    const queries = stack([unit([0.1, 0.2, 1]), unit([1, 0.3, 0]), unit([0.2, 1, 0.3])]);
    assert.deepEqual(await zeroShot(encoder, queries, names), [2, 0, 1]);
    assert.deepEqual(encoder.textCalls, [['face smiling', 'animal mammal', 'food fruit']]);
  });

  it('takes a custom prompt template', async () => {
    const encoder = fakeEncoder(2, new Map(), (t) => (t === 'a photo of b' ? unit([0, 1]) : unit([1, 0])));
    assert.deepEqual(await zeroShot(encoder, unit([0.1, 1]), ['a', 'b'], { prompt: (c) => `a photo of ${c}` }), [1]);
  });

  it('classPrompt turns separators into spaces', () => {
    assert.equal(classPrompt('face-smiling'), 'face smiling');
    assert.equal(classPrompt('hand_fingers--open'), 'hand fingers open');
    assert.equal(classPrompt('  flag '), 'flag');
  });
});

describe('retrievalPurity', () => {
  it('is the per-class mean share of neighbours whose label equals the query class', () => {
    const lists = [
      [neighbour(0, 'alpha', 0.9), neighbour(1, 'alpha', 0.8), neighbour(2, 'beta', 0.7), neighbour(3, undefined, 0.6)], // alpha query: 2/4
      [neighbour(4, 'alpha', 0.9), neighbour(5, 'alpha', 0.8), neighbour(6, 'alpha', 0.7), neighbour(7, 'alpha', 0.6)], // alpha query: 4/4
      [neighbour(8, 'alpha', 0.9), neighbour(9, 'gamma', 0.8)], // beta query: 0/2
    ];
    const purity = retrievalPurity(lists, [0, 0, 1], classes);
    assert.deepEqual(purity, [0.75, 0, null]);
  });

  it('is null everywhere when the KB has no labels', () => {
    assert.deepEqual(retrievalPurity([[neighbour(0, undefined, 0.9)]], [0], classes), [null, null, null]);
  });

  it('refuses mismatched lengths', () => {
    assert.throws(() => retrievalPurity([[]], [0, 1], classes), /neighbour lists/);
  });
});
