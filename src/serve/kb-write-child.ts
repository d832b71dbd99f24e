/**
 * The service's KB writer process (see kb-writes.ts): opens the KB spec it is given and runs each
 * request from its parent as one write transaction. Exits when the parent says so or goes away.
 */
import { openKnowledgeBaseSpec } from '../kb/registry.ts';
import type { EmbeddedPair, WriteOptions } from '../kb/types.ts';
import { RetformerError } from '../util/errors.ts';

type Request = { id: number; op: 'add'; pairs: EmbeddedPair[]; options: WriteOptions } | { id: number; op: 'remove'; ids: string[] } | { op: 'close' };

const send = (msg: unknown) => process.send?.(msg);
const spec = process.argv[2];

try {
  const kb = await openKnowledgeBaseSpec(spec);
  let chain: Promise<void> = Promise.resolve();
  process.on('disconnect', () => {
    void chain.then(() => kb.close()).finally(() => process.exit(0));
  });
  process.on('message', (req: Request) => {
    chain = chain.then(async () => {
      if (req.op === 'close') {
        await kb.close();
        process.disconnect();
        return;
      }
      try {
        const w = await kb.beginWrite(req.op === 'add' ? req.options : {});
        try {
          if (req.op === 'add') await w.append(req.pairs, (i) => `pair "${req.pairs[i]?.meta.id}"`);
          else await w.remove(req.ids);
        } catch (err) {
          await w.abort();
          throw err;
        }
        send({ id: req.id, manifest: await w.commit() });
      } catch (err) {
        send({ id: req.id, error: { message: (err as Error).message ?? String(err), user: err instanceof RetformerError } });
      }
    });
  });
  send({ ready: true });
} catch (err) {
  send({ fatal: (err as Error).message ?? String(err) });
  process.disconnect();
}
