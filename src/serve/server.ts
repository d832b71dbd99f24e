import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Predictor } from '../infer/predictor.ts';
import { openKnowledgeBaseSpec } from '../kb/registry.ts';
import { RUN_FILES, type RunKbInfo, readJson } from '../train/run-files.ts';
import { RetformerError } from '../util/errors.ts';
import { buildApp } from './app.ts';
import { ProcessWrites } from './kb-writes.ts';
import type { ServeDeps, ServeOptions } from './types.ts';

export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_PORT = 8080;

export interface StartOptions extends ServeOptions {
  runDir: string;
  /** KB spec to serve instead of the one the run recorded (a moved KB, or postgres://...). */
  kb?: string;
  /** Loopback by default: another interface only when asked. */
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Where pictures added through the API are stored (default RUN/uploads). */
  uploadsDir?: string;
  /** ONNX Runtime threads for the model (default 1). */
  threads?: number;
}

export interface RunningServer {
  app: FastifyInstance;
  /** e.g. http://127.0.0.1:8080 */
  url: string;
  host: string;
  port: number;
  /** Stop accepting, let in-flight requests finish, wait for KB writes, close the model and the KB. */
  close(): Promise<void>;
}

/** The KB spec a run was trained on (RUN/kb.json), or the override. */
export function runKbSpec(runDir: string, override?: string): string {
  if (override !== undefined) return override.includes('://') ? override : resolve(override);
  const info = readJson<RunKbInfo>(join(runDir, RUN_FILES.kb), 'KB of the run');
  const spec = info.spec ?? info.dir;
  if (!spec) throw new RetformerError(`${runDir}: the run was trained on an in-memory KB; give the KB to serve with --kb`);
  return spec;
}

/** Open the run's predictor over a writable KB shared with the service. */
export async function openServeDeps(options: Pick<StartOptions, 'runDir' | 'kb' | 'uploadsDir' | 'threads'>): Promise<ServeDeps> {
  const runDir = resolve(options.runDir);
  if (!existsSync(runDir)) throw new RetformerError(`${runDir}: run folder not found (--run)`);
  const kb = await openKnowledgeBaseSpec(runKbSpec(runDir, options.kb));
  try {
    const encoder = await kb.openEncoder();
    const predictor = await Predictor.fromRun(runDir, { kbInstance: kb, encoder, threads: options.threads });
    return { predictor, kb, uploadsDir: resolve(options.uploadsDir ?? join(runDir, 'uploads')), writes: (served) => new ProcessWrites(served.spec) };
  } catch (err) {
    await kb.close();
    throw err;
  }
}

/** Build the service over `deps` (or the run's) and listen. */
export async function startServer(options: StartOptions, deps?: ServeDeps): Promise<RunningServer> {
  const served = deps ?? (await openServeDeps(options));
  const app = await buildApp(served, options);
  const host = options.host ?? DEFAULT_HOST;
  try {
    await app.listen({ host, port: options.port ?? DEFAULT_PORT });
  } catch (err) {
    await app.close();
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE') throw new RetformerError(`${host}:${options.port}: port already in use (--port)`);
    if (e.code === 'EADDRNOTAVAIL' || e.code === 'ENOTFOUND') throw new RetformerError(`${host}: cannot listen on this address (--host)`);
    throw err;
  }
  const address = app.server.address() as AddressInfo;
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return { app, url: `http://${shown}:${address.port}`, host: address.address, port: address.port, close: () => app.close() };
}
