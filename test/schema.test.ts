import { readFileSync } from 'node:fs';
import path from 'node:path';

import { print } from 'graphql';

import { ModelDocument, PlatformStatusDocument, type PlatformStatusQuery } from '../examples/gql/graphql';
import { printPublicSchema } from '../src/server/schema';
import { FLASH_SAMPLES, startTestServer } from './helpers/server';

describe('the committed schema', () => {
  it('matches the schema the type-graphql classes emit (run `npm run schema` when this fails)', async () => {
    const committed = readFileSync(path.join(__dirname, '..', 'schema', 'schema.graphql'), 'utf8');
    expect(await printPublicSchema()).toBe(committed);
  });
});

describe('the generated client operations', () => {
  it('run against the real server with the types codegen gave them', async () => {
    const server = await startTestServer({ withFlashSamples: true });
    try {
      const status = await server.graphql<PlatformStatusQuery>(print(PlatformStatusDocument));
      const typed: PlatformStatusQuery['status'] | undefined = status.data?.status;
      expect(typed).toEqual({ status: 'SLEEPING', taskType: null, devMode: false, cleanupActive: true });

      const inference = JSON.parse(readFileSync(path.join(FLASH_SAMPLES, 'inference.json'), 'utf8'));
      const [token] = Object.keys(inference);
      const model = await server.graphql(print(ModelDocument), { variables: { token } });
      expect(model.errors).toBeUndefined();
      expect(model.data).toMatchObject({ model: { token, taskType: 'IMAGE_CLASSIFICATION' } });
    } finally {
      await server.stop();
    }
  });
});

describe('the custom scalars', () => {
  const SPECIFIED_BY = {
    Upload: 'https://github.com/jaydenseric/graphql-multipart-request-spec',
    DateTime: 'https://scalars.graphql.org/andimarek/date-time',
  };

  it('say where they are specified, in the committed schema and by introspection', async () => {
    const committed = readFileSync(path.join(__dirname, '..', 'schema', 'schema.graphql'), 'utf8');
    for (const [name, url] of Object.entries(SPECIFIED_BY)) {
      expect(committed).toContain(`scalar ${name} @specifiedBy(url: "${url}")`);
    }
    const server = await startTestServer();
    try {
      for (const [name, url] of Object.entries(SPECIFIED_BY)) {
        const response = await server.graphql(`{ __type(name: "${name}") { kind specifiedByURL } }`);
        expect(response.data).toEqual({ __type: { kind: 'SCALAR', specifiedByURL: url } });
      }
    } finally {
      await server.stop();
    }
  });
});
