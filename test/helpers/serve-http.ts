import type { FastifyInstance, LightMyRequestResponse } from 'fastify';

/** A multipart/form-data body (as a browser's FormData would send it): fields and picture files. */
export async function multipartBody(fields: Record<string, string>, files: Array<{ field: string; name: string; bytes: Uint8Array; type?: string }>): Promise<{ payload: Buffer; headers: Record<string, string> }> {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  for (const f of files) form.append(f.field, new Blob([Buffer.from(f.bytes)], { type: f.type ?? 'image/png' }), f.name);
  const res = new Response(form);
  return { payload: Buffer.from(await res.arrayBuffer()), headers: { 'content-type': res.headers.get('content-type')! } };
}

export const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');

export function json<T = Record<string, unknown>>(res: LightMyRequestResponse): T {
  return JSON.parse(res.body) as T;
}

export async function postJson(app: FastifyInstance, url: string, body: unknown, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return app.inject({ method: 'POST', url, payload: JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } });
}

/** Every error answer is JSON with a status and a one-line message. */
export function assertOneLineError(res: LightMyRequestResponse, status?: number): string {
  const body = json<{ statusCode: number; message: string }>(res);
  if (status !== undefined && res.statusCode !== status) throw new Error(`expected ${status}, got ${res.statusCode}: ${res.body}`);
  if (body.statusCode !== res.statusCode) throw new Error(`statusCode field ${body.statusCode} differs from ${res.statusCode}`);
  if (typeof body.message !== 'string' || body.message.length === 0 || body.message.includes('\n')) throw new Error(`not a one-line message: ${res.body}`);
  return body.message;
}
