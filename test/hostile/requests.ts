import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

import type { TestServer } from '../helpers/server';
import { imageInput, SUBMIT, textInput } from '../helpers/training';
import { corpusFile, type Dataset, type Expected } from './corpus';

/** A request that has not been answered by then has hung: a finding in itself. */
export const REQUEST_TIMEOUT_MILLIS = 10_000;

export interface GraphQLErrorBody {
  message: string;
  path?: string[];
  extensions?: { code?: string; field?: string; document?: string; [key: string]: unknown };
}

export interface Answer<T = Record<string, unknown>> {
  status: number;
  data?: T | null;
  errors?: GraphQLErrorBody[];
  /** The body as sent, to look for what it must not contain. */
  text: string;
}

export const codes = (answer: { errors?: GraphQLErrorBody[] }) => answer.errors?.map((error) => error.extensions?.code);

/** No data came back: none at all, or only root fields that are null (root fields are nullable). */
export const noData = (data: Record<string, unknown> | null | undefined): boolean =>
  data == null || Object.values(data).every((value) => value === null);

/** POSTs a body as it is; a body that is not JSON comes back as the text of one error without a code. */
export async function post<T = Record<string, unknown>>(
  url: string,
  { headers, body }: { headers: Record<string, string>; body: Buffer | string | FormData },
  { timeoutMillis = REQUEST_TIMEOUT_MILLIS } = {},
): Promise<Answer<T>> {
  const response = await fetch(url, {
    method: 'POST',
    headers,
    body: typeof body === 'string' || body instanceof FormData ? body : new Uint8Array(body),
    signal: AbortSignal.timeout(timeoutMillis),
  });
  const text = await response.text();
  try {
    return { status: response.status, ...(JSON.parse(text) as object), text };
  } catch {
    return { status: response.status, errors: [{ message: text }], text };
  }
}

export interface GraphQLOptions {
  variables?: Record<string, unknown>;
  /** Sent as `Authorization: Bearer <key>`. */
  key?: string;
  headers?: Record<string, string>;
}

/** A JSON operation, as the real clients send one. */
export function graphql<T = Record<string, unknown>>(
  server: TestServer,
  query: string,
  { variables, key, headers = {} }: GraphQLOptions = {},
): Promise<Answer<T>> {
  return post<T>(server.url, {
    headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}), ...headers },
    body: JSON.stringify({ query, variables }),
  });
}

export type Submitted = { submitTraining: { token: string; state: string; queuePosition: number | null } };

/** `submitTraining` as a GraphQL multipart request, the way browsers send it. */
export async function submit(
  server: TestServer,
  dataset: Dataset,
  overrides: Record<string, unknown> = {},
  options: { timeoutMillis?: number } = {},
): Promise<Answer<Submitted>> {
  const form = new FormData();
  const files: { path: string; filename: string; content: Buffer }[] = [];
  let input: Record<string, unknown>;
  switch (dataset.kind) {
    case 'zip':
      input = imageInput(overrides);
      files.push({
        path: 'variables.input.dataset',
        filename: dataset.filename ?? 'dataset.zip',
        content: await dataset.build(),
      });
      break;
    case 'csv':
      input = textInput(overrides);
      files.push({ path: 'variables.input.dataset', filename: dataset.file, content: corpusFile(dataset.file) });
      break;
    case 'csv-bytes':
      input = textInput(overrides);
      files.push({ path: 'variables.input.dataset', filename: dataset.filename ?? 'dataset.csv', content: dataset.build() });
      break;
    case 'classes': {
      const classes = await dataset.build();
      input = imageInput({
        ...overrides,
        dataset: undefined,
        classes: classes.map(({ name, images }) => ({ name, images: images.map(() => null) })),
      });
      classes.forEach(({ images }, i) =>
        images.forEach((image, j) => files.push({ path: `variables.input.classes.${i}.images.${j}`, ...image })),
      );
      break;
    }
  }
  form.append('operations', JSON.stringify({ query: SUBMIT, variables: { input } }));
  form.append('map', JSON.stringify(Object.fromEntries(files.map((file, i) => [String(i), [file.path]]))));
  files.forEach((file, i) => form.append(String(i), new Blob([new Uint8Array(file.content)]), file.filename));
  return post<Submitted>(server.url, { headers: { 'apollo-require-preflight': 'true' }, body: form }, options);
}

/** Checks an answer against the corpus's expectation. */
export function expectAnswer(answer: Answer, expected: Expected): void {
  const seen = { status: answer.status, codes: codes(answer), message: answer.errors?.[0]?.message };
  switch (expected.kind) {
    case 'http':
      expect(seen).toEqual({ status: expected.status, codes: [expected.code], message: expect.any(String) });
      expect(answer.data).toBeUndefined();
      break;
    case 'graphql':
      expect(seen).toEqual({ status: expect.any(Number), codes: [expected.code], message: expect.any(String) });
      expect(answer.status).toBeLessThan(500);
      expect(noData(answer.data)).toBe(true);
      if (expected.field !== undefined) expect(answer.errors?.[0]?.extensions?.field).toBe(expected.field);
      if (expected.fields !== undefined) {
        const fields = answer.errors?.[0]?.extensions?.fields as { field: string }[] | undefined;
        expect(fields?.map((problem) => problem.field)).toEqual(expected.fields);
      }
      if (expected.message) expect(seen.message).toMatch(expected.message);
      break;
    case 'accepted':
      expect(seen).toEqual({ status: 200, codes: undefined, message: undefined });
      break;
  }
}

/**
 * Every folder and file under `root` (a file with a hash of its bytes), except the server's
 * scratch folders themselves, which a first upload creates; anything left inside them shows.
 */
export function tree(root: string): Record<string, string> {
  const entries: Record<string, string> = {};
  const walk = (folder: string) => {
    for (const name of readdirSync(folder)) {
      const full = path.join(folder, name);
      const relative = path.relative(root, full);
      if (statSync(full).isDirectory()) {
        if (!/(^|\/)\.work(\/uploads)?$/.test(relative)) entries[`${relative}/`] = 'folder';
        walk(full);
      } else {
        entries[relative] = createHash('sha1').update(readFileSync(full)).digest('hex');
      }
    }
  };
  walk(root);
  return entries;
}

/** What is left in the staging folder of uploads being checked. */
export function stagingLeftovers(dataDir: string): string[] {
  const uploads = path.join(dataDir, '.work', 'uploads');
  return existsSync(uploads) ? readdirSync(uploads) : [];
}

export const readJson = (dataDir: string, key: string) => JSON.parse(readFileSync(path.join(dataDir, key), 'utf8'));

export async function waitUntil(condition: () => boolean | Promise<boolean>, timeoutMillis = 10_000, what = 'a condition') {
  const deadline = Date.now() + timeoutMillis;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
