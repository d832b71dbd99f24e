import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { type ZodType, z } from 'zod';
import { HttpError } from './errors.ts';
import { ErrorSchema } from './schemas.ts';

/**
 * Routes declared once with their zod schemas: the same table validates requests and generates
 * the OpenAPI document (/openapi.json). Request bodies are JSON; routes that take pictures also
 * accept multipart/form-data (file field "image", or "images" for batches) and a raw image body.
 */
export interface RouteSpec<Q extends ZodType = ZodType, P extends ZodType = ZodType, B extends ZodType = ZodType> {
  method: 'GET' | 'POST' | 'DELETE';
  url: string;
  summary: string;
  tag: string;
  /** Needs the bearer token (KB writes). */
  auth?: boolean;
  query?: Q;
  params?: P;
  body?: B;
  /** Accepts pictures as multipart files or a raw image body; 'many' for batches. */
  uploads?: 'one' | 'many';
  /** Per-route body limit in bytes (default: the server's). */
  bodyLimit?: number;
  /** Success responses: a zod schema (JSON) or a non-JSON content type. */
  responses: Record<number, ZodType | { contentType: string; description: string }>;
  handler: (input: RouteInput<z.output<Q>, z.output<P>, z.output<B>>, request: FastifyRequest, reply: FastifyReply) => Promise<unknown>;
}

export interface RouteInput<Q, P, B> {
  query: Q;
  params: P;
  body: B;
  /** Pictures sent as multipart files or as the raw body, in order. */
  files: Uint8Array[];
}

/** One-line message from a zod error: the first problem with its field path. */
export function zodMessage(error: z.ZodError, where: string): string {
  const issue = error.issues[0];
  const path = issue.path.length > 0 ? issue.path.join('.') : where;
  const extra = error.issues.length > 1 ? ` (and ${error.issues.length - 1} more problem${error.issues.length > 2 ? 's' : ''})` : '';
  return `${path}: ${issue.message}${extra}`;
}

function parse<T extends ZodType>(schema: T | undefined, value: unknown, where: string): z.output<T> {
  if (!schema) return value as z.output<T>;
  const r = schema.safeParse(value ?? (where === 'body' ? undefined : {}));
  if (!r.success) throw new HttpError(400, zodMessage(r.error, where));
  return r.data;
}

/** Convert multipart text fields to what the JSON body schema expects (numbers, booleans). */
function coerceField(value: string): unknown {
  if (value === 'true') return true;
  if (value === 'false') return false;
  return value;
}

async function readMultipart(request: FastifyRequest, spec: RouteSpec): Promise<{ fields: Record<string, unknown>; files: Uint8Array[] }> {
  const fields: Record<string, unknown> = {};
  const files: Uint8Array[] = [];
  const wanted = spec.uploads === 'many' ? ['images', 'image'] : ['image'];
  for await (const part of request.parts()) {
    if (part.type === 'file') {
      if (!wanted.includes(part.fieldname)) {
        part.file.resume();
        throw new HttpError(400, `unexpected file field "${part.fieldname}" (send the picture as "${wanted[0]}")`);
      }
      const bytes = await part.toBuffer(); // throws 413 past the file size limit
      if (spec.uploads === 'one' && files.length > 0) throw new HttpError(400, 'send one picture (field "image")');
      files.push(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    } else {
      if (part.fieldname in fields) throw new HttpError(400, `field "${part.fieldname}" given twice`);
      fields[part.fieldname] = coerceField(String(part.value));
    }
  }
  return { fields, files };
}

export function addRoute<Q extends ZodType, P extends ZodType, B extends ZodType>(app: FastifyInstance, spec: RouteSpec<Q, P, B>, authorize: (request: FastifyRequest) => void): void {
  app.route({
    method: spec.method,
    url: spec.url,
    ...(spec.bodyLimit ? { bodyLimit: spec.bodyLimit } : {}),
    handler: async (request, reply) => {
      if (spec.auth) authorize(request);
      let body: unknown = request.body;
      let files: Uint8Array[] = [];
      if (spec.uploads && request.isMultipart()) {
        const form = await readMultipart(request, spec as unknown as RouteSpec).catch((err: Error & { statusCode?: number }) => {
          // busboy's parse errors carry no status: a malformed body is the client's
          throw err instanceof HttpError || (err.statusCode !== undefined && err.statusCode < 500) ? err : new HttpError(400, `malformed multipart body: ${err.message}`);
        });
        body = form.fields;
        files = form.files;
      } else if (spec.uploads && Buffer.isBuffer(body)) {
        files = [new Uint8Array(body.buffer, body.byteOffset, body.byteLength)];
        body = {};
      } else if (request.isMultipart()) {
        throw new HttpError(415, `${spec.url} takes JSON, not multipart/form-data`);
      } else if (Buffer.isBuffer(body)) {
        throw new HttpError(415, `${spec.url} takes JSON, not a raw body`);
      }
      if (spec.body && body === undefined) throw new HttpError(400, 'missing JSON body');
      if (spec.body && (typeof body !== 'object' || body === null || Array.isArray(body))) throw new HttpError(400, 'body: expected a JSON object');
      const input = {
        query: parse(spec.query, request.query, 'query'),
        params: parse(spec.params, request.params, 'params'),
        body: parse(spec.body, body, 'body'),
        files,
      };
      return spec.handler(input, request, reply);
    },
  });
}

// ---------------------------------------------------------------------------------------------
// OpenAPI 3.1 (its schemas are JSON Schema 2020-12, what zod 4 emits)
// ---------------------------------------------------------------------------------------------

const jsonSchema = (schema: ZodType, io: 'input' | 'output') => z.toJSONSchema(schema, { io, unrepresentable: 'any' });

function parameters(schema: ZodType | undefined, where: 'query' | 'path'): unknown[] {
  if (!schema || !(schema instanceof z.ZodObject)) return [];
  return Object.entries(schema.shape as Record<string, ZodType>).map(([name, field]) => ({
    name,
    in: where,
    required: where === 'path' || !field.safeParse(undefined).success,
    schema: jsonSchema(field, 'input'),
    ...(field.description ? { description: field.description } : {}),
  }));
}

const ERROR_TEXT: Record<number, string> = {
  400: 'bad request (one-line message)',
  401: 'missing or wrong bearer token',
  403: 'writes are disabled (no token configured)',
  404: 'unknown id',
  409: 'conflict (duplicate id)',
  413: 'too large (bytes or decoded pixels)',
  415: 'not an image (judged by content) or unsupported media type',
};

export function openApiDocument(routes: readonly RouteSpec[], info: { title: string; version: string; description: string }): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const path = r.url.replace(/:([A-Za-z_]+)/g, '{$1}');
    const content: Record<string, unknown> = {};
    if (r.body) content['application/json'] = { schema: jsonSchema(r.body, 'input') };
    if (r.uploads) {
      const fileField = r.uploads === 'many' ? { images: { type: 'array', items: { type: 'string', contentMediaType: 'application/octet-stream' } } } : { image: { type: 'string', contentMediaType: 'application/octet-stream' } };
      content['multipart/form-data'] = { schema: { type: 'object', properties: { ...fileField } } };
      if (r.uploads === 'one') content['image/*'] = { schema: { type: 'string', contentMediaType: 'application/octet-stream' } };
    }
    const responses: Record<string, unknown> = {};
    for (const [status, res] of Object.entries(r.responses)) {
      responses[status] =
        res instanceof z.ZodType
          ? { description: 'OK', content: { 'application/json': { schema: jsonSchema(res, 'output') } } }
          : { description: res.description, content: { [res.contentType]: { schema: { type: 'string' } } } };
    }
    const errors = [400, ...(r.auth ? [401, 403] : []), ...(r.url.includes(':id') ? [404] : []), ...(r.uploads ? [413, 415] : [])];
    for (const s of errors) responses[String(s)] = { description: ERROR_TEXT[s], content: { 'application/json': { schema: jsonSchema(ErrorSchema, 'output') } } };
    paths[path] ??= {};
    paths[path][r.method.toLowerCase()] = {
      summary: r.summary,
      tags: [r.tag],
      parameters: [...parameters(r.params, 'path'), ...parameters(r.query, 'query')],
      ...(Object.keys(content).length > 0 ? { requestBody: { required: true, content } } : {}),
      responses,
      ...(r.auth ? { security: [{ bearer: [] }] } : {}),
    };
  }
  return {
    openapi: '3.1.0',
    info,
    servers: [{ url: '/' }],
    paths,
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'the token given at start-up (--token or RETFORMER_TOKEN)' } } },
  };
}
