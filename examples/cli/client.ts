import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { print } from 'graphql';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

/** A GraphQL error as the server sends it; clients branch on `extensions.code`. */
export interface GraphQLErrorShape {
  message: string;
  path?: readonly (string | number)[];
  extensions?: { code?: string; field?: string; [key: string]: unknown };
}

/** An operation's result whose root fields are all there. */
export type PresentRoots<Result> = { [Root in keyof Result]: NonNullable<Result[Root]> };

/** The server answered with errors (or not with GraphQL at all). */
export class GraphQLRequestError extends Error {
  constructor(readonly errors: readonly GraphQLErrorShape[]) {
    super(errors.map(describeError).join('\n'));
    this.name = 'GraphQLRequestError';
  }
}

/** `[MODEL_NOT_FOUND] No model with this token (field: token)`. */
export function describeError({ message, extensions }: GraphQLErrorShape): string {
  const field = typeof extensions?.field === 'string' ? ` (field: ${extensions.field})` : '';
  return `[${extensions?.code ?? 'UNKNOWN'}] ${message}${field}`;
}

/**
 * GraphQL over HTTP with the generated typed documents: JSON for plain operations, a GraphQL
 * multipart request (graphql-multipart-request-spec) as soon as the variables hold a `Blob`,
 * and graphql-ws on the same URL for subscriptions.
 */
export class FlashClient {
  /** `adminKey` goes with every HTTP request as `Authorization: Bearer <key>`. */
  constructor(
    readonly url: string,
    private readonly adminKey?: string,
  ) {}

  /**
   * Runs a query or mutation. The schema's root fields are nullable (an error in one leaves the
   * others their data), and a root is null only beside an error, which this throws: so the
   * roots of what it returns are never null.
   */
  async request<Result, Variables extends Record<string, unknown>>(
    document: TypedDocumentNode<Result, Variables>,
    variables: Variables,
  ): Promise<PresentRoots<Result>> {
    const query = print(document);
    const files = new Map<Blob, string[]>();
    const withoutFiles = extractFiles(variables, 'variables', files);
    const init: RequestInit =
      files.size === 0
        ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query, variables }) }
        : // Apollo's CSRF prevention refuses multipart requests without a preflight-forcing header.
          { headers: { 'apollo-require-preflight': 'true' }, body: multipartBody(query, withoutFiles, files) };
    const response = await this.fetch(this.url, {
      ...init,
      method: 'POST',
      headers: {
        accept: 'application/graphql-response+json, application/json',
        ...(this.adminKey ? { authorization: `Bearer ${this.adminKey}` } : {}),
        ...init.headers,
      },
    });
    const text = await response.text();
    let body: { data?: Result | null; errors?: GraphQLErrorShape[] };
    try {
      body = JSON.parse(text);
    } catch {
      throw new GraphQLRequestError([{ message: text.trim() || response.statusText, extensions: { code: `HTTP_${response.status}` } }]);
    }
    if (body.errors?.length) throw new GraphQLRequestError(body.errors);
    const { data } = body;
    const missing = data ? Object.keys(data).find((root) => data[root as keyof Result] == null) : 'data';
    if (missing !== undefined) {
      throw new GraphQLRequestError([{ message: `The answer holds no ${missing}.`, extensions: { code: `HTTP_${response.status}` } }]);
    }
    return data as PresentRoots<Result>;
  }

  /** Follows a subscription until the server completes it; errors are thrown. */
  async *subscribe<Result, Variables extends Record<string, unknown>>(
    document: TypedDocumentNode<Result, Variables>,
    variables: Variables,
  ): AsyncGenerator<Result> {
    // A dropped connection is retried, and the subscription made again: the server starts
    // each subscription with the job's current state, so nothing but batch ticks is lost.
    const client = createClient({ url: this.url.replace(/^http/, 'ws'), webSocketImpl: WebSocket, retryAttempts: 3 });
    try {
      for await (const result of client.iterate({ query: print(document), variables })) {
        if (result.errors?.length) throw new GraphQLRequestError(result.errors);
        if (result.data) yield result.data as Result;
      }
    } catch (error) {
      throw subscriptionError(error, this.url);
    } finally {
      await client.dispose();
    }
  }

  /** Downloads a link the API handed out. */
  async download(url: string): Promise<Response> {
    const response = await this.fetch(url);
    if (!response.ok) throw new Error(`Download failed: HTTP ${response.status} ${await response.text()}`);
    return response;
  }

  private async fetch(url: string, init?: RequestInit): Promise<Response> {
    try {
      return await fetch(url, init);
    } catch (error) {
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      throw new Error(`Cannot reach ${new URL(url).origin}: ${cause?.code ?? cause?.message ?? String(error)}`);
    }
  }
}

/** Copies `value` with every Blob replaced by null, noting where each one was. */
function extractFiles(value: unknown, path: string, files: Map<Blob, string[]>): unknown {
  if (value instanceof Blob) {
    files.set(value, [...(files.get(value) ?? []), path]);
    return null;
  }
  if (Array.isArray(value)) return value.map((item, i) => extractFiles(item, `${path}.${i}`, files));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, extractFiles(item, `${path}.${key}`, files)]));
  }
  return value;
}

/** `operations`, then `map`, then the files: the order the multipart spec requires. */
function multipartBody(query: string, variables: unknown, files: Map<Blob, string[]>): FormData {
  const form = new FormData();
  form.append('operations', JSON.stringify({ query, variables }));
  const entries = [...files];
  form.append('map', JSON.stringify(Object.fromEntries(entries.map(([, paths], i) => [String(i), paths]))));
  entries.forEach(([file], i) => form.append(String(i), file, file instanceof File ? file.name : 'upload'));
  return form;
}

/** graphql-ws rejects with the server's errors, a close event or an Error. */
function subscriptionError(error: unknown, url: string): Error {
  if (error instanceof Error) return error;
  if (Array.isArray(error)) return new GraphQLRequestError(error as GraphQLErrorShape[]);
  const close = error as { code?: number; reason?: string; message?: string };
  if (typeof close.code === 'number') return new Error(`The subscription connection closed (${close.code}${close.reason ? `: ${close.reason}` : ''}).`);
  return new Error(`Cannot subscribe at ${url}: ${close.message ?? String(error)}`);
}
