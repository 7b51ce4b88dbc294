import type { GraphQLSchema } from 'graphql';

/**
 * The named operations of `examples/operations/*.graphql`: the project's own client operations
 * (the example CLI and the generated client types use them). A test keeps this list and those
 * files in step.
 */
export const KNOWN_OPERATIONS: readonly string[] = [
  'CancelTraining',
  'ClassifyImage',
  'ClassifyImages',
  'ClassifyText',
  'ClassifyTexts',
  'DeleteModel',
  'DownloadModel',
  'Model',
  'Models',
  'PlatformStatus',
  'RunCleanup',
  'SetCleanup',
  'SetDevMode',
  'StatusChanged',
  'SubmitTraining',
  'TrainingJob',
  'TrainingProgress',
];

/** The label of an operation sent without a name. */
export const ANONYMOUS_OPERATION = 'anonymous';
/** The one label that every other operation name shares. */
export const OTHER_OPERATION = 'other';

/**
 * The `operation` label of the request metrics, for an operation name as the client sent it.
 *
 * Why not the name itself: operation names are the client's to choose, and every distinct label
 * value is a time series that the server keeps in memory and serves on every scrape, forever.
 * Labelling by name let one client add a series per request (5,000 names, 5,000 series). So a
 * name is a label only when it belongs to a fixed set known at start: the known client
 * operations and the schema's root field names (`query status { … }`). Any other name counts
 * as `other`, no name as `anonymous`.
 */
export function operationLabeller(schema: GraphQLSchema): (name: string | null | undefined) => string {
  const known = new Set<string>(KNOWN_OPERATIONS);
  for (const root of [schema.getQueryType(), schema.getMutationType(), schema.getSubscriptionType()]) {
    for (const field of Object.keys(root?.getFields() ?? {})) known.add(field);
  }
  return (name) => (!name ? ANONYMOUS_OPERATION : known.has(name) ? name : OTHER_OPERATION);
}
