import type { FastifyInstance } from 'fastify';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export interface MetricsSources {
  kbSize(): number;
  kbGeneration(): number;
  pendingWrites(): number;
  model: { id: string; variant: string; encoder: string };
}

/**
 * Prometheus metrics on a registry of this server's own (several servers in one process, as in
 * the tests, never share counters): requests and latency per route, KB size and generation,
 * the model's identity, and the process defaults (CPU, memory, event-loop lag).
 */
export function installMetrics(app: FastifyInstance, sources: MetricsSources): { registry: Registry; observeBatch: (queries: number) => void } {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'retformer_' });
  const requests = new Counter({
    name: 'retformer_http_requests_total',
    help: 'HTTP requests by route, method and status code',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'retformer_http_request_duration_seconds',
    help: 'HTTP request latency by route and method',
    labelNames: ['route', 'method'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  new Gauge({
    name: 'retformer_kb_pairs',
    help: 'Live pairs in the knowledge base',
    registers: [registry],
    collect() {
      this.set(sources.kbSize());
    },
  });
  new Gauge({
    name: 'retformer_kb_generation',
    help: 'Committed generation of the knowledge base (changes on every add/remove)',
    registers: [registry],
    collect() {
      this.set(sources.kbGeneration());
    },
  });
  new Gauge({
    name: 'retformer_kb_pending_writes',
    help: 'KB writes queued or running in this process',
    registers: [registry],
    collect() {
      this.set(sources.pendingWrites());
    },
  });
  const info = new Gauge({ name: 'retformer_model_info', help: 'The served model (value 1)', labelNames: ['model', 'variant', 'encoder'] as const, registers: [registry] });
  info.set({ model: sources.model.id, variant: sources.model.variant, encoder: sources.model.encoder }, 1);

  const batches = new Histogram({
    name: 'retformer_predict_batch_size',
    help: 'Queries per forward pass (concurrent requests are batched together)',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
    registers: [registry],
  });

  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    requests.inc({ route, method: request.method, status: String(reply.statusCode) });
    latency.observe({ route, method: request.method }, reply.elapsedTime / 1000);
  });
  return { registry, observeBatch: (queries) => batches.observe(queries) };
}
