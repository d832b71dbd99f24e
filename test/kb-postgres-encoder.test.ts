/**
 * A Postgres KB keeps its encoder's frozen files (bytea): a process that has only the spec reopens
 * the exact encoder the KB was built with, and queries embedded by it find their pairs.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { after, test } from 'node:test';
import pg from 'pg';
import { createEncoder } from '../src/encoders/registry.ts';
import { checksumDir } from '../src/kb/format.ts';
import { embedPairRows, readPairsCsv } from '../src/kb/pairs.ts';
import { parsePgSpec } from '../src/kb/postgres/index.ts';
import { startPgliteServer } from '../src/kb/postgres/pglite-server.ts';
import { createKnowledgeBase, openKnowledgeBaseSpec } from '../src/kb/registry.ts';
import { removeTempDirs, tempDir, writePairsFixture } from './helpers/kb-fixtures.ts';

after(removeTempDirs);

function readTree(dir: string): Map<string, Uint8Array> {
  const files = new Map<string, Uint8Array>();
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else files.set(relative(dir, p), new Uint8Array(readFileSync(p)));
    }
  };
  walk(dir);
  return files;
}

test('the embedded encoder is stored in the database and reopened from it', async () => {
  const server = await startPgliteServer();
  try {
    const work = tempDir();
    const { csv } = await writePairsFixture(work, { n: 24, seed: 11 });
    const rows = readPairsCsv(csv);
    const encoder = await createEncoder({ kind: 'embedded' }, { fitPairs: rows.map((r) => ({ image: r.path, text: r.text })), seed: 0, quiet: true });
    const saved = join(work, 'encoder');
    const descriptor = await encoder.save(saved);
    const spec = server.specFor('shapes');
    const kb = await createKnowledgeBase(spec, { encoder: descriptor, encoderChecksum: checksumDir(saved), encoderFiles: readTree(saved), dim: encoder.dim });
    const w = await kb.beginWrite({ allowNewLabels: true });
    for await (const batch of embedPairRows(encoder, rows, csv, { batchSize: 10 })) await w.append(batch.pairs);
    await w.commit();
    await kb.close();
    const original = await encoder.embedImages([rows[5].path]); // [1, dim]
    await encoder.close();

    const reader = await openKnowledgeBaseSpec(spec);
    const reopened = await reader.openEncoder();
    try {
      assert.equal(reopened.id, descriptor.id);
      const again = await reopened.embedImages([rows[5].path]);
      assert.deepEqual(Array.from(again), Array.from(original), 'the reopened encoder embeds exactly as the original');
      const [list] = await reader.search(again, { k: 3, queryEncoderId: reopened.id });
      assert.equal(list[0].id, rows[5].id);
      const [byText] = await reader.search(await reopened.embedTexts([rows[9].text]), { k: 24, modality: 'text', queryEncoderId: reopened.id });
      assert.ok(byText.some((n) => n.text === rows[9].text));
    } finally {
      await reopened.close();
    }
    // files that do not match the manifest's checksum are refused
    const client = new pg.Client({ connectionString: parsePgSpec(spec).connectionString });
    await client.connect();
    await client.query(`UPDATE shapes_manifest SET encoder_checksum = 'sha256:0000'`);
    await client.end();
    await reader.refresh();
    await assert.rejects(reader.openEncoder(), /do not match the manifest's checksum/);
    await reader.close();
  } finally {
    await server.stop();
  }
});
