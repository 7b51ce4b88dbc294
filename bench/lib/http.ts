/**
 * The benchmark's HTTP client: Node's own fetch (undici, keep-alive), as a browser or a script
 * would call the API. Every answer is checked, so that errors are never timed as successes.
 */

export interface GraphQLAnswer<T> {
  data?: T | null;
  errors?: { message: string; extensions?: { code?: string } }[];
}

export async function postJson<T>(
  url: string,
  query: string,
  variables: Record<string, unknown> = {},
  headers: Record<string, string> = {},
): Promise<T> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ query, variables }),
  });
  return check<T>(response);
}

export interface UploadPart {
  /** Where the file goes in the variables, e.g. `variables.image`. */
  path: string;
  filename: string;
  content: Blob;
}

/** A GraphQL multipart request (the spec graphql-upload implements), built per call as a browser does. */
export async function postMultipart<T>(
  url: string,
  query: string,
  variables: Record<string, unknown>,
  files: readonly UploadPart[],
): Promise<T> {
  const form = new FormData();
  form.append('operations', JSON.stringify({ query, variables }));
  form.append('map', JSON.stringify(Object.fromEntries(files.map((file, i) => [String(i), [file.path]]))));
  files.forEach((file, i) => form.append(String(i), file.content, file.filename));
  const response = await fetch(url, { method: 'POST', body: form, headers: { 'apollo-require-preflight': 'true' } });
  return check<T>(response);
}

async function check<T>(response: Response): Promise<T> {
  const text = await response.text();
  let answer: GraphQLAnswer<T>;
  try {
    answer = JSON.parse(text) as GraphQLAnswer<T>;
  } catch {
    throw new Error(`HTTP ${response.status}: ${text.slice(0, 300)}`);
  }
  if (!response.ok || answer.errors?.length || !answer.data) {
    throw new Error(`HTTP ${response.status}: ${JSON.stringify(answer.errors ?? answer).slice(0, 500)}`);
  }
  return answer.data;
}

export const CLASSIFY_IMAGE = `mutation($t: ID!, $i: Upload) { classifyImage(token: $t, image: $i) { label probability } }`;
export const CLASSIFY_TEXT = `mutation($t: ID!, $x: String!) { classifyText(token: $t, text: $x) { label probability } }`;
export const STATUS = `{ status { status taskType devMode cleanupActive } }`;

export function classifyImage(url: string, token: string, image: Blob) {
  return postMultipart<{ classifyImage: { label: string } }>(url, CLASSIFY_IMAGE, { t: token, i: null }, [
    { path: 'variables.i', filename: 'photo.jpg', content: image },
  ]);
}

export function classifyText(url: string, token: string, text: string) {
  return postJson<{ classifyText: { label: string } }>(url, CLASSIFY_TEXT, { t: token, x: text });
}

/** The same multipart body to an endpoint that only reads it: the transport's own cost. */
export function drainMultipart(url: string, image: Blob) {
  return postMultipart<{ drained: boolean }>(url, CLASSIFY_IMAGE, { t: 'none', i: null }, [
    { path: 'variables.i', filename: 'photo.jpg', content: image },
  ]);
}

/** The same JSON body to an endpoint that only reads it. */
export function drainJson(url: string, token: string, text: string) {
  return postJson<{ drained: boolean }>(url, CLASSIFY_TEXT, { t: token, x: text });
}
