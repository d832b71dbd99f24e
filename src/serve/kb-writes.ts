import { type ChildProcess, fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { EmbeddedPair, KbManifest, KbWriter, WritableKnowledgeBase, WriteOptions } from '../kb/types.ts';
import { RetformerError } from '../util/errors.ts';
import { HttpError } from './errors.ts';

/**
 * How the service commits KB writes. One transaction at a time (the caller queues them).
 * - in-process: through the served KB object itself (in-memory KBs, tests);
 * - process: through a second handle on the same KB spec in a child process, so that a commit's
 *   synchronous file work (index saves, fsyncs: tens of milliseconds on a busy disk) never stalls
 *   the event loop that answers predictions. The served KB then `refresh()`es to the new generation.
 */
export interface KbWriteRunner {
  add(pairs: readonly EmbeddedPair[], options: WriteOptions): Promise<KbManifest>;
  remove(ids: readonly string[]): Promise<KbManifest>;
  close(): Promise<void>;
}

async function transact(kb: WritableKnowledgeBase, options: WriteOptions, body: (w: KbWriter) => Promise<void>, commit: (w: KbWriter) => Promise<KbManifest>): Promise<KbManifest> {
  const writer = await kb.beginWrite(options);
  try {
    await body(writer);
  } catch (err) {
    await writer.abort();
    throw err;
  }
  return commit(writer);
}

const locateIn = (pairs: readonly EmbeddedPair[]) => (i: number) => `pair "${pairs[i]?.meta.id}"`;

/** Writes through the served KB object; `exclusive` wraps the commit (the service's gate). */
export function inProcessWrites(kb: WritableKnowledgeBase, exclusive: <T>(fn: () => Promise<T>) => Promise<T>): KbWriteRunner {
  const commit = (w: KbWriter) => exclusive(() => w.commit());
  return {
    add: (pairs, options) => transact(kb, options, (w) => w.append(pairs, locateIn(pairs)), commit),
    remove: (ids) => transact(kb, {}, (w) => w.remove(ids), commit),
    close: async () => {},
  };
}

type Request = { op: 'add'; pairs: readonly EmbeddedPair[]; options: WriteOptions } | { op: 'remove'; ids: readonly string[] };
type Reply = { id: number; manifest: KbManifest } | { id: number; error: { message: string; user: boolean } } | { ready: true } | { fatal: string };

/**
 * Writes through a child process holding its own handle on the KB spec (src/serve/kb-write-child.ts;
 * a child process rather than a worker thread because the HNSW binding does not load in workers).
 * The KB's own write lock keeps it the only writer; the parent's served KB refreshes after each commit.
 */
export class ProcessWrites implements KbWriteRunner {
  private readonly child: ChildProcess;
  private readonly ready: Promise<void>;
  private next = 1;
  private readonly waiting = new Map<number, { resolve: (m: KbManifest) => void; reject: (e: unknown) => void }>();
  private failed?: string;
  private closing = false;

  constructor(spec: string) {
    // beside this module: the TypeScript source (run through tsx) or its compiled .js (a built package)
    const ts = fileURLToPath(new URL('./kb-write-child.ts', import.meta.url));
    const script = existsSync(ts) ? ts : fileURLToPath(new URL('./kb-write-child.js', import.meta.url));
    this.child = fork(script, [spec], {
      execArgv: script === ts ? ['--import', import.meta.resolve('tsx')] : [],
      serialization: 'advanced', // typed arrays cross as they are
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.ready = new Promise((resolve, reject) => {
      this.child.on('message', (msg: Reply) => {
        if ('ready' in msg) return resolve();
        if ('fatal' in msg) {
          this.fail(`the KB writer could not open the KB: ${msg.fatal}`);
          return reject(new RetformerError(this.failed!));
        }
        const w = this.waiting.get(msg.id);
        if (!w) return;
        this.waiting.delete(msg.id);
        if ('manifest' in msg) w.resolve(msg.manifest);
        else w.reject(msg.error.user ? new RetformerError(msg.error.message) : new Error(msg.error.message));
      });
      this.child.on('exit', (code) => {
        this.fail(`the KB writer process has stopped (exit code ${code})`);
        reject(new HttpError(503, this.failed!));
      });
    });
    this.ready.catch(() => {}); // reported to the write that waits on it
  }

  private fail(message: string): void {
    this.failed ??= message;
    for (const w of this.waiting.values()) w.reject(new HttpError(503, message));
    this.waiting.clear();
  }

  private async send(req: Request): Promise<KbManifest> {
    await this.ready;
    if (this.failed || this.closing) throw new HttpError(503, this.failed ?? 'the server is shutting down');
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.child.send({ ...req, id });
    });
  }

  add(pairs: readonly EmbeddedPair[], options: WriteOptions): Promise<KbManifest> {
    return this.send({ op: 'add', pairs, options });
  }

  remove(ids: readonly string[]): Promise<KbManifest> {
    return this.send({ op: 'remove', ids });
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    if (this.child.connected) this.child.send({ op: 'close' });
    else this.child.kill('SIGTERM');
    await exited;
  }
}
