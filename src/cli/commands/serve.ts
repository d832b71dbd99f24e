import type { Command } from 'commander';
import { z } from 'zod';
import { parseFlags } from '../parse-flags.ts';

const int = (min: number, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max);

const serveSchema = z.object({
  run: z.string(),
  kb: z.string().optional(),
  host: z.string().min(1).default('127.0.0.1'),
  port: int(0, 65535).default(8080),
  token: z.string().min(8, 'use at least 8 characters').optional(),
  uploads: z.string().optional(),
  maxUploadMb: z.coerce.number().positive().max(1024).default(8),
  maxPixels: int(1).default(16_000_000),
  maxBatch: int(1, 1024).default(64),
  threads: int(1, 64).default(1),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

/** `retformer serve`: the HTTP service and web page over a trained run and its KB. */
export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .summary('Serve a trained run over HTTP: predictions with their evidence, KB search and live KB edits, a web page')
    .description(
      'Start the HTTP service (docs/serve.md): POST /predict, /predict/batch, /kb/search, /knn-service (clip-retrieval shape), ' +
        'KB edits (POST /kb/pairs, DELETE /kb/pairs/:id) behind a bearer token, /kb/stats, /healthz, /metrics, /openapi.json, ' +
        'and the web page at /. Binds 127.0.0.1 unless --host says otherwise. SIGTERM or Ctrl-C stops it gracefully.',
    )
    .requiredOption('--run <dir>', 'run folder written by `retformer train`')
    .option('--kb <spec>', 'serve this KB (folder or postgres://...) instead of the one the run recorded')
    .option('--host <address>', 'interface to listen on', '127.0.0.1')
    .option('--port <n>', 'port (0 picks a free one)', '8080')
    .option('--token <token>', 'bearer token for KB writes (default: $RETFORMER_TOKEN; without one, writes are refused)')
    .option('--uploads <dir>', 'where pictures added through the API are stored (default RUN/uploads)')
    .option('--max-upload-mb <n>', 'largest picture accepted, MiB', '8')
    .option('--max-pixels <n>', 'largest decoded picture, width x height', '16000000')
    .option('--max-batch <n>', 'most pictures per /predict/batch request and per forward pass', '64')
    .option('--threads <n>', 'ONNX Runtime threads for the model', '1')
    .option('--log-level <level>', 'request log level (fatal, error, warn, info, debug, trace, silent)', 'info')
    .action(async (raw: Record<string, unknown>) => {
      const flags = parseFlags(serveSchema, { ...raw, token: raw.token ?? (process.env.RETFORMER_TOKEN || undefined) });
      const { startServer } = await import('../../serve/server.ts');
      const server = await startServer({
        runDir: flags.run,
        kb: flags.kb,
        host: flags.host,
        port: flags.port,
        token: flags.token,
        uploadsDir: flags.uploads,
        threads: flags.threads,
        limits: { maxUploadBytes: Math.round(flags.maxUploadMb * 1024 * 1024), maxPixels: flags.maxPixels, maxBatch: flags.maxBatch },
        logger: { level: flags.logLevel },
      });
      process.stderr.write(`retformer serve: listening on ${server.url} (KB writes ${flags.token ? 'enabled with the token' : 'disabled: no --token / RETFORMER_TOKEN'}); stop with Ctrl-C or SIGTERM\n`);
      await new Promise<void>((done) => {
        const stop = (signal: string) => {
          process.stderr.write(`retformer serve: ${signal}: finishing in-flight requests and closing the KB\n`);
          server.close().then(done, (err: unknown) => {
            process.stderr.write(`retformer serve: error while closing: ${(err as Error).message}\n`);
            process.exitCode = 1;
            done();
          });
        };
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
      });
      process.stderr.write('retformer serve: stopped\n');
    });
}
