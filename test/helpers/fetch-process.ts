import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

/** A request the other process sends: a GraphQL multipart request when `file` is set, else JSON. */
export interface ProcessRequest {
  url: string;
  headers?: Record<string, string>;
  /** The GraphQL request (`operations`, or the JSON body). */
  operations: { query: string; variables?: Record<string, unknown> };
  /** The multipart `map`, when there is a file. */
  map?: Record<string, string[]>;
  /** One file, sent as the part named `0`: `size` bytes of one repeated letter. */
  file?: { name: string; size: number };
}

export interface ProcessAnswer {
  status?: number;
  body?: { data?: unknown; errors?: { message: string; extensions?: { code?: string; field?: string } }[] };
  /** What fetch threw instead of answering ("fetch failed"), and its cause's code (EPIPE). */
  failed?: string;
}

// Plain JavaScript: the other process runs without the TypeScript loader, so it starts fast.
const CLIENT = `
const requests = JSON.parse(process.argv.at(-1));
(async () => {
  const answers = [];
  for (const request of requests) {
    let body;
    if (request.file) {
      body = new FormData();
      body.append('operations', JSON.stringify(request.operations));
      body.append('map', JSON.stringify(request.map));
      body.append('0', new Blob([Buffer.alloc(request.file.size, 0x61)]), request.file.name);
    } else {
      body = JSON.stringify(request.operations);
    }
    const headers = request.file ? request.headers : { 'content-type': 'application/json', ...request.headers };
    try {
      const response = await fetch(request.url, { method: 'POST', body, headers });
      const text = await response.text();
      let parsed;
      try { parsed = JSON.parse(text); } catch { parsed = { errors: [{ message: text }] }; }
      answers.push({ status: response.status, body: parsed });
    } catch (error) {
      answers.push({ failed: error.message + (error.cause ? ': ' + (error.cause.code || error.cause.message) : '') });
    }
  }
  process.stdout.write(JSON.stringify(answers));
})();
`;

/**
 * Sends `requests` one after another with Node's global fetch (undici, keeping connections
 * alive) from a separate process. A client in the server's own process shares its event loop,
 * which hides what a real client meets: an answer sent, and the connection closed, while the
 * client is still sending the body.
 */
export async function fetchFromAnotherProcess(requests: readonly ProcessRequest[]): Promise<ProcessAnswer[]> {
  const { stdout } = await promisify(execFile)(process.execPath, ['-e', CLIENT, JSON.stringify(requests)], {
    maxBuffer: 16 * 1024 * 1024,
  });
  return JSON.parse(stdout) as ProcessAnswer[];
}
