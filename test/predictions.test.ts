import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import sharp from 'sharp';

import { DocumentStore, INFERENCE, STATUS } from '../src/documents';
import { FsStore } from '../src/store';
import { ADMIN_KEY, startTestServer, type TestServer } from './helpers/server';
import { deployModel, type TrainedModel, trainImageModel, trainTextModel } from './helpers/trained-models';
import { writeDeployedJobRecord } from './helpers/records';
import { multipart } from './helpers/training';

jest.setTimeout(120_000);

const IMAGE = 'imageClassification-colours-predictiontest01';
const TEXT = 'textClassification-reviews-predictiontest01';
const PREDICTION = 'label probability top { label probability }';

type Prediction = { label: string; probability: number; top: { label: string; probability: number }[] };
const codes = (response: { errors?: { extensions?: { code?: string } }[] }) =>
  response.errors?.map((error) => error.extensions?.code);

let scratch: string;
let server: TestServer;
let imageModel: TrainedModel<Buffer>;
let textModel: TrainedModel<string>;

beforeAll(async () => {
  scratch = mkdtempSync(path.join(tmpdir(), 'flash-predictions-'));
  [imageModel, textModel] = await Promise.all([
    trainImageModel(path.join(scratch, 'image')),
    trainTextModel(path.join(scratch, 'text')),
  ]);
  server = await startTestServer();
  const store = new FsStore(server.dataDir);
  const entries = {
    [IMAGE]: await deployModel(store, IMAGE, imageModel, 'imageclassification'),
    [TEXT]: await deployModel(store, TEXT, textModel, 'textclassification'),
  };
  await new DocumentStore(store).update(INFERENCE, (inference) => ({ ...inference, ...entries }));
});

afterAll(async () => {
  await server.stop();
  rmSync(scratch, { recursive: true, force: true });
});

function expectWellFormed(prediction: Prediction | undefined, classes: string[]): void {
  expect(prediction).toBeDefined();
  const { label, probability, top } = prediction as Prediction;
  expect(classes).toContain(label);
  expect(top[0]).toEqual({ label, probability });
  expect(top.map((entry) => entry.label).sort()).toEqual([...classes].sort());
  expect(top.reduce((sum, entry) => sum + entry.probability, 0)).toBeCloseTo(1, 5);
  for (let i = 1; i < top.length; i++) expect(top[i - 1]!.probability).toBeGreaterThanOrEqual(top[i]!.probability);
}

const classifyUpload = (token: string, content: Buffer, filename = 'photo.png', topK?: number) =>
  multipart<{ classifyImage: Prediction }>(
    server,
    `mutation($t: ID!, $i: Upload, $k: Int) { classifyImage(token: $t, image: $i, topK: $k) { ${PREDICTION} } }`,
    { t: token, i: null, k: topK ?? null },
    [{ path: 'variables.i', filename, content }],
  );

describe('image predictions', () => {
  it('classify an uploaded image with probabilities that sum to 1', async () => {
    const response = await classifyUpload(IMAGE, imageModel.sources[0]!.input);
    expect(response.errors).toBeUndefined();
    expectWellFormed(response.data?.classifyImage, imageModel.classes);
  });

  it('give the same answer for the image sent as base64, and as JPEG', async () => {
    const source = imageModel.sources.at(-1)!.input;
    const uploaded = (await classifyUpload(IMAGE, source)).data?.classifyImage;
    const base64 = await server.graphql<{ classifyImage: Prediction }>(
      `mutation($t: ID!, $b: String) { classifyImage(token: $t, imageBase64: $b) { ${PREDICTION} } }`,
      { variables: { t: IMAGE, b: source.toString('base64') } },
    );
    expect(base64.data?.classifyImage).toEqual(uploaded);
    const jpeg = await classifyUpload(IMAGE, await sharp(source).jpeg({ quality: 95 }).toBuffer(), 'photo.jpg');
    expect(jpeg.data?.classifyImage.label).toBe(uploaded?.label);
  });

  it('classify several images in order', async () => {
    const sources = imageModel.sources.slice(0, 4);
    const response = await multipart<{ classifyImages: Prediction[] }>(
      server,
      `mutation($t: ID!, $i: [Upload!]!) { classifyImages(token: $t, images: $i) { ${PREDICTION} } }`,
      { t: IMAGE, i: sources.map(() => null) },
      sources.map((source, i) => ({ path: `variables.i.${i}`, filename: `${i}.png`, content: source.input })),
    );
    expect(response.data?.classifyImages).toHaveLength(4);
    for (const [i, prediction] of (response.data?.classifyImages ?? []).entries()) {
      expectWellFormed(prediction, imageModel.classes);
      const single = (await classifyUpload(IMAGE, sources[i]!.input)).data?.classifyImage;
      expect(prediction.label).toBe(single?.label);
      expect(prediction.probability).toBeCloseTo(single?.probability ?? -1, 5);
    }
  });

  it('keep answering status while many predictions run', async () => {
    const batch = Array.from({ length: 16 }, (_, i) => imageModel.sources[i % imageModel.sources.length]!.input);
    const predictions = Promise.all(
      Array.from({ length: 12 }, () =>
        multipart(
          server,
          `mutation($t: ID!, $i: [Upload!]!) { classifyImages(token: $t, images: $i) { label } }`,
          { t: IMAGE, i: batch.map(() => null) },
          batch.map((content, i) => ({ path: `variables.i.${i}`, filename: `${i}.png`, content })),
        ),
      ),
    ).then(() => Date.now());
    await new Promise((resolve) => setTimeout(resolve, 50));
    const status = await server.graphql('{ status { status } }');
    const answeredAt = Date.now();
    expect(status.data).toEqual({ status: { status: 'SLEEPING' } });
    expect(answeredAt).toBeLessThan(await predictions);
  });

  it('refuse what is not an image, an empty file, and topK out of range', async () => {
    const notImage = await classifyUpload(IMAGE, Buffer.from('plain text, not pixels'), 'fake.png');
    expect(codes(notImage)).toEqual(['BAD_USER_INPUT']);
    expect(codes(await classifyUpload(IMAGE, Buffer.alloc(0)))).toEqual(['BAD_USER_INPUT']);
    expect(codes(await classifyUpload(IMAGE, imageModel.sources[0]!.input, 'a.png', 3))).toEqual(['BAD_USER_INPUT']);
    expect(codes(await classifyUpload(IMAGE, imageModel.sources[0]!.input, 'a.png', 0))).toEqual(['BAD_USER_INPUT']);
    const neither = await server.graphql(`mutation { classifyImage(token: "${IMAGE}") { label } }`);
    expect(codes(neither)).toEqual(['BAD_USER_INPUT']);
  });
});

describe('text predictions', () => {
  it('classify texts, one or several, with top-k', async () => {
    const one = await server.graphql<{ classifyText: Prediction }>(
      `mutation($t: ID!) { classifyText(token: $t, text: "a wonderful film, truly great", topK: 1) { ${PREDICTION} } }`,
      { variables: { t: TEXT } },
    );
    expect(one.data?.classifyText.top).toHaveLength(1);
    expect(textModel.classes).toContain(one.data?.classifyText.label);

    const several = await server.graphql<{ classifyTexts: Prediction[] }>(
      `mutation($t: ID!, $x: [String!]!) { classifyTexts(token: $t, texts: $x) { ${PREDICTION} } }`,
      { variables: { t: TEXT, x: ['a terrible film, truly boring', 'love it', 'never seen words zyx'] } },
    );
    expect(several.data?.classifyTexts).toHaveLength(3);
    for (const prediction of several.data?.classifyTexts ?? []) expectWellFormed(prediction, textModel.classes);
  });

  it('refuse an empty text, and a text model asked for an image', async () => {
    const empty = await server.graphql(`mutation { classifyText(token: "${TEXT}", text: "   ") { label } }`);
    expect(codes(empty)).toEqual(['BAD_USER_INPUT']);
    expect(codes(await classifyUpload(TEXT, imageModel.sources[0]!.input))).toEqual(['BAD_USER_INPUT']);
  });
});

describe('request limits', () => {
  it('refuse an image over the size limit, as upload or base64, and keep the connection usable', async () => {
    const small = await startTestServer({ config: { inference: { maxImageBytes: 2048, maxInputsPerRequest: 2 } } });
    try {
      const store = new FsStore(small.dataDir);
      const entry = await deployModel(store, IMAGE, imageModel, 'imageclassification');
      await new DocumentStore(store).update(INFERENCE, (inference) => ({ ...inference, [IMAGE]: entry }));
      const big = await sharp({ create: { width: 300, height: 300, channels: 3, background: '#808080' } })
        .png({ compressionLevel: 0 })
        .toBuffer();

      const upload = await multipart(
        small,
        `mutation($t: ID!, $i: Upload) { classifyImage(token: $t, image: $i) { label } }`,
        { t: IMAGE, i: null },
        [{ path: 'variables.i', filename: 'big.png', content: big }],
      );
      expect(codes(upload)).toEqual(['BAD_USER_INPUT']);
      expect(upload.errors?.[0]?.extensions?.field).toBe('image');

      const base64 = await small.graphql(`mutation($t: ID!, $b: String) { classifyImage(token: $t, imageBase64: $b) { label } }`, {
        variables: { t: IMAGE, b: big.toString('base64') },
      });
      expect(codes(base64)).toEqual(['BAD_USER_INPUT']);
      expect(base64.errors?.[0]?.extensions?.field).toBe('imageBase64');

      const many = await small.graphql(`mutation($t: ID!, $x: [String!]!) { classifyTexts(token: $t, texts: $x) { label } }`, {
        variables: { t: TEXT, x: ['a', 'b', 'c'] },
      });
      expect(codes(many)).toEqual(['BAD_USER_INPUT']);
      expect((await small.graphql('{ status { status } }')).data).toEqual({ status: { status: 'SLEEPING' } });
    } finally {
      await small.stop();
    }
  });

  it('answer a body over the server limit with a JSON error, not a stack trace', async () => {
    const response = await fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ status { status } }', variables: { pad: 'x'.repeat(20 * 1024 * 1024) } }),
    });
    expect(response.status).toBe(413);
    const body = (await response.json()) as { errors: { extensions: { code: string } }[] };
    expect(body.errors[0].extensions.code).toBe('BAD_REQUEST');
    expect(JSON.stringify(body)).not.toMatch(/at .*node_modules/);
  });
});

describe('unknown and unavailable models', () => {
  it('answer MODEL_NOT_FOUND, and MODEL_TRAINING for the job being trained', async () => {
    const unknown = await server.graphql(`mutation { classifyText(token: "textClassification-x-nope", text: "hi") { label } }`);
    expect(codes(unknown)).toEqual(['MODEL_NOT_FOUND']);
    expect(codes(await classifyUpload('imageClassification-x-nope', imageModel.sources[0]!.input))).toEqual([
      'MODEL_NOT_FOUND',
    ]);

    const documents = new DocumentStore(new FsStore(server.dataDir));
    const running = 'textClassification-running-now1';
    await documents.update(STATUS, (status) => ({
      ...status,
      status: 'active' as const,
      token: running,
      task_type: 'textclassification' as const,
    }));
    try {
      const training = await server.graphql(`mutation { classifyText(token: "${running}", text: "hi") { label } }`);
      expect(codes(training)).toEqual(['MODEL_TRAINING']);
    } finally {
      await documents.update(STATUS, (status) => ({ ...status, status: 'sleeping' as const, token: '', task_type: '' as const }));
    }
  });

  it('answer MODEL_NOT_SERVABLE for a model whose ONNX file is damaged, and keep serving others', async () => {
    const broken = 'imageClassification-broken-predictiontest';
    const store = new FsStore(server.dataDir);
    const entry = await deployModel(store, broken, imageModel, 'imageclassification');
    writeFileSync(path.join(server.dataDir, entry.model_filename_onnx as string), 'not an onnx model');
    await new DocumentStore(store).update(INFERENCE, (inference) => ({ ...inference, [broken]: entry }));

    const response = await classifyUpload(broken, imageModel.sources[0]!.input);
    expect(codes(response)).toEqual(['MODEL_NOT_SERVABLE']);
    expect(JSON.stringify(response)).not.toMatch(/onnx|protobuf|ort/i);
    expect((await classifyUpload(IMAGE, imageModel.sources[0]!.input)).errors).toBeUndefined();
  });

  it('answer MODEL_EXPIRED once cleanup deleted a model, and free it', async () => {
    const expiring = 'textClassification-expiring-predictiontest';
    const store = new FsStore(server.dataDir);
    const documents = new DocumentStore(store);
    const entry = { ...(await deployModel(store, expiring, textModel, 'textclassification')), created: '01-01-21 00:00' };
    await documents.update(INFERENCE, (inference) => ({ ...inference, [expiring]: entry }));
    writeDeployedJobRecord(server.dataDir, expiring, 'textclassification');
    const classify = `mutation { classifyText(token: "${expiring}", text: "great") { label } }`;
    expect((await server.graphql(classify)).errors).toBeUndefined();

    const cleanup = await server.graphql<{ runCleanup: string[] }>('mutation { runCleanup }', { key: ADMIN_KEY });
    expect(cleanup.data?.runCleanup).toContain(expiring);
    expect(codes(await server.graphql(classify))).toEqual(['MODEL_EXPIRED']);
    const download = await server.graphql(`mutation { downloadModel(token: "${expiring}", format: ONNX) { url } }`);
    expect(codes(download)).toEqual(['MODEL_EXPIRED']);
  });
});

describe('errors a form can use', () => {
  const CLASSIFY_IMAGES = `mutation($t: ID!, $i: [Upload!]!) { classifyImages(token: $t, images: $i) { label } }`;
  type Problem = { field: string; message: string };
  const fieldsOf = (response: { errors?: { extensions?: Record<string, unknown> }[] }) =>
    (response.errors?.[0]?.extensions?.fields as Problem[] | undefined)?.map((problem) => problem.field);

  it('name the index of every image classifyImages cannot use', async () => {
    const images = imageModel.sources.slice(0, 6).map((source) => source.input);
    images[3] = Buffer.from('plain text, not pixels');
    images[5] = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>');
    const response = await multipart(
      server,
      CLASSIFY_IMAGES,
      { t: IMAGE, i: images.map(() => null) },
      images.map((content, i) => ({ path: `variables.i.${i}`, filename: `${i}.png`, content })),
    );
    expect(codes(response)).toEqual(['BAD_USER_INPUT']);
    expect(response.errors?.[0]?.extensions?.field).toBe('images[3]');
    expect(fieldsOf(response)).toEqual(['images[3]', 'images[5]']);
  });

  it('name the index of every text classifyTexts cannot use', async () => {
    const response = await server.graphql(`mutation($t: ID!, $x: [String!]!) { classifyTexts(token: $t, texts: $x) { label } }`, {
      variables: { t: TEXT, x: ['a great film', '   ', 'fine', ''] },
    });
    expect(codes(response)).toEqual(['BAD_USER_INPUT']);
    expect(response.errors?.[0]?.extensions?.field).toBe('texts[1]');
    expect(fieldsOf(response)).toEqual(['texts[1]', 'texts[3]']);
  });
});

describe('imageBase64', () => {
  const CLASSIFY_BASE64 = `mutation($t: ID!, $b: String) { classifyImage(token: $t, imageBase64: $b) { ${PREDICTION} } }`;
  const classifyBase64 = (b: string) => server.graphql<{ classifyImage: Prediction }>(CLASSIFY_BASE64, { variables: { t: IMAGE, b } });

  it('takes a data: URL as browsers make one (FileReader.readAsDataURL, canvas.toDataURL)', async () => {
    const source = imageModel.sources[1]!.input;
    const plain = await classifyBase64(source.toString('base64'));
    expect(plain.errors).toBeUndefined();
    for (const prefix of ['data:image/png;base64,', 'DATA:image/png;BASE64,', 'data:image/png;name=photo.png;base64,']) {
      const url = await classifyBase64(`${prefix}${source.toString('base64')}`);
      expect(url.errors).toBeUndefined();
      expect(url.data?.classifyImage).toEqual(plain.data?.classifyImage);
    }
  });

  it.each([
    ['a data: URL of another media type', 'data:text/plain;base64,aGVsbG8='],
    ['a data: URL that is not base64', 'data:image/png,%89PNG'],
    ['a data: URL without a comma', 'data:image/png;base64'],
  ])('refuses %s with BAD_USER_INPUT on imageBase64', async (_label, value) => {
    const response = await classifyBase64(value);
    expect(codes(response)).toEqual(['BAD_USER_INPUT']);
    expect(response.errors?.[0]?.extensions?.field).toBe('imageBase64');
    expect(response.errors?.[0]?.message).toMatch(/data: URL/);
  });
});

describe('a text model', () => {
  it('names its classes, from its vocabulary file, as image models do', async () => {
    const model = await server.graphql<{ model: { classes: string[] | null } }>(`query($t: ID!) { model(token: $t) { classes } }`, {
      variables: { t: TEXT },
    });
    expect(model.errors).toBeUndefined();
    expect(model.data?.model.classes).toEqual(textModel.classes);
    const listed = await server.graphql<{ models: { token: string; classes: string[] | null }[] }>('{ models { token classes } }', {
      key: ADMIN_KEY,
    });
    expect(listed.data?.models.find((entry) => entry.token === TEXT)?.classes).toEqual(textModel.classes);
    expect(listed.data?.models.find((entry) => entry.token === IMAGE)?.classes).toEqual(imageModel.classes);
  });
});
