import { GraphQLScalarType } from 'graphql';
import { DateTimeResolver } from 'graphql-scalars';
import { GraphQLUpload } from 'graphql-upload-minimal';

/**
 * The custom scalars, each with `@specifiedBy` pointing at the specification it follows, so
 * that clients and tools (codegen, Sandbox) know their format without guessing from the name.
 * They are copies of the libraries' scalars with the URL added; the libraries' own instances
 * are left as they are.
 */

/** A file in a GraphQL multipart request. */
export const Upload = new GraphQLScalarType({
  ...GraphQLUpload.toConfig(),
  specifiedByURL: 'https://github.com/jaydenseric/graphql-multipart-request-spec',
});

/** An RFC 3339 date-time at UTC, such as `2026-12-01T10:15:30.000Z`. */
export const DateTime = new GraphQLScalarType({
  ...DateTimeResolver.toConfig(),
  specifiedByURL: 'https://scalars.graphql.org/andimarek/date-time',
});
