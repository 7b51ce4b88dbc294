import { createClient } from 'graphql-ws';
import sharp from 'sharp';
import WebSocket from 'ws';

import type { GraphQLResponse, TestServer } from './server';
import { zip } from './zip';

/** Distinct, easily separable pictures per class: a colour and a stripe direction each. */
const PALETTE = ['#d03030', '#3050d0', '#30b040', '#d0b030'];

export async function classImage(classIndex: number, variant: number, side = 48): Promise<Buffer> {
  const stripes = Array.from({ length: 6 }, (_, i) =>
    classIndex % 2 === 0
      ? `<rect x="0" y="${i * 8}" width="${side}" height="3" fill="#ffffff"/>`
      : `<rect x="${i * 8}" y="0" width="3" height="${side}" fill="#ffffff"/>`,
  ).join('');
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${side}" height="${side}">
    <rect width="${side}" height="${side}" fill="${PALETTE[classIndex % PALETTE.length]}"/>${stripes}
    <circle cx="${8 + (variant * 7) % 30}" cy="${10 + (variant * 5) % 28}" r="4" fill="#101010"/></svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}

/** A ZIP of class folders, `count` images each. */
export async function imageZip(classes: Record<string, number>): Promise<Buffer> {
  const entries = [];
  for (const [index, [name, count]] of Object.entries(classes).entries()) {
    for (let i = 0; i < count; i++) entries.push({ name: `${name}/${i + 1}.png`, data: await classImage(index, i) });
  }
  return zip(entries);
}

/** A CSV of two clearly separable labels. */
export function sentimentCsv(rowsPerLabel = 12): string {
  const good = ['great', 'wonderful', 'love', 'excellent', 'happy', 'superb'];
  const bad = ['terrible', 'awful', 'hate', 'boring', 'sad', 'dreadful'];
  const rows = ['input,label'];
  for (let i = 0; i < rowsPerLabel; i++) {
    rows.push(`"${good[i % 6]} ${good[(i + 2) % 6]} film, ${good[(i + 4) % 6]}",positive`);
    rows.push(`"${bad[i % 6]} ${bad[(i + 3) % 6]} film, ${bad[(i + 1) % 6]}",negative`);
  }
  return `${rows.join('\r\n')}\r\n`;
}

export interface UploadFile {
  /** Where the file goes in the variables, e.g. `variables.input.dataset`. */
  path: string;
  filename: string;
  content: Buffer | string;
}

/** A GraphQL multipart request (the spec graphql-upload implements), as browsers send it. */
export async function multipart<T = Record<string, unknown>>(
  server: TestServer,
  query: string,
  variables: Record<string, unknown>,
  files: UploadFile[],
  headers: Record<string, string> = { 'apollo-require-preflight': 'true' },
): Promise<GraphQLResponse<T>> {
  const form = new FormData();
  form.append('operations', JSON.stringify({ query, variables }));
  form.append('map', JSON.stringify(Object.fromEntries(files.map((file, i) => [String(i), [file.path]]))));
  files.forEach((file, i) => form.append(String(i), new Blob([file.content]), file.filename));
  const response = await fetch(server.url, { method: 'POST', body: form, headers });
  const text = await response.text();
  try {
    return { status: response.status, ...(JSON.parse(text) as object) };
  } catch {
    return { status: response.status, errors: [{ message: text }] };
  }
}

export const SUBMIT = `mutation Submit($input: TrainingInput!) {
  submitTraining(input: $input) { token state queuePosition epochs taskType architecture }
}`;

export const imageInput = (overrides: Record<string, unknown> = {}) => ({
  taskType: 'IMAGE_CLASSIFICATION',
  taskName: 'shapes test',
  model: 'RESNET18',
  optimizer: 'ADAM',
  learningRate: 0.003,
  batchSize: 4,
  epochs: 2,
  dataSplit: '70 : 30',
  pretrainDataset: 'SCRATCH',
  dataset: null,
  ...overrides,
});

export const textInput = (overrides: Record<string, unknown> = {}) => ({
  taskType: 'TEXT_CLASSIFICATION',
  taskName: 'sentiment',
  model: 'GRU',
  optimizer: 'ADAM',
  learningRate: 0.01,
  batchSize: 4,
  epochs: 3,
  dataSplit: '75:25',
  dataset: null,
  ...overrides,
});

export interface Subscription<T> {
  events: T[];
  /** Resolves when the server completes the subscription; rejects on an error. */
  completed: Promise<void>;
  close(): Promise<void>;
}

/** A real graphql-ws client subscription that collects every `data` payload. */
export function subscribe<T = Record<string, unknown>>(
  server: TestServer,
  query: string,
  variables: Record<string, unknown>,
): Subscription<T> {
  const client = createClient({ url: server.url.replace(/^http/, 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 });
  const events: T[] = [];
  const completed = new Promise<void>((resolve, reject) => {
    client.subscribe<T>(
      { query, variables },
      {
        next: (value) => {
          if (value.errors) reject(new Error(JSON.stringify(value.errors)));
          else if (value.data) events.push(value.data as T);
        },
        error: reject,
        complete: resolve,
      },
    );
  });
  return { events, completed, close: () => client.dispose() as Promise<void> };
}

/** Polls `trainingJob` until the job is in one of `states`. */
export async function waitForState(
  server: TestServer,
  token: string,
  states: string[],
  timeoutMillis = 90_000,
): Promise<{ state: string; error: string | null; [key: string]: unknown }> {
  const deadline = Date.now() + timeoutMillis;
  for (;;) {
    const response = await server.graphql<{ trainingJob: { state: string; error: string | null } }>(
      `query($t: ID!) { trainingJob(token: $t) { state error queuePosition history { epoch } } }`,
      { variables: { t: token } },
    );
    const job = response.data?.trainingJob;
    if (job && states.includes(job.state)) return job;
    if (Date.now() > deadline) throw new Error(`Job ${token} is ${job?.state ?? JSON.stringify(response)}, not ${states}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
