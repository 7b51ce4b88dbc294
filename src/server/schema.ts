import 'reflect-metadata';

import { type GraphQLSchema, lexicographicSortSchema, printSchema } from 'graphql';
import { buildSchema as buildTypeGraphQLSchema } from 'type-graphql';

import { resolvers } from '../../resolvers';
import { DateTime } from '../../schema/scalars';
import { createPlatformPubSub, type PlatformPubSub } from '../events/pubsub';
import { AdminKeyVerifier } from './admin-key';
import { createAuthChecker } from './auth';

export interface SchemaOptions {
  pubsub: PlatformPubSub;
  admin: AdminKeyVerifier;
}

/** The executable schema, built from the type-graphql classes in `schema/` and `resolvers/`. */
export function buildSchema({ pubsub, admin }: SchemaOptions): Promise<GraphQLSchema> {
  return buildTypeGraphQLSchema({
    resolvers,
    authChecker: createAuthChecker(admin),
    // Input validation lives in the services (zod), not in class-validator decorators.
    validate: false,
    pubSub: pubsub,
    scalarsMap: [{ type: Date, scalar: DateTime }],
  });
}

/** SDL as committed in `schema/schema.graphql`: sorted, so that it only changes with the API. */
export async function printPublicSchema(): Promise<string> {
  const schema = await buildSchema({ pubsub: createPlatformPubSub(), admin: new AdminKeyVerifier('schema-printing-only') });
  return `${printSchema(lexicographicSortSchema(schema))}\n`;
}
