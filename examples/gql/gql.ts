/* eslint-disable */
import * as types from './graphql';
import type { TypedDocumentNode as DocumentNode } from '@graphql-typed-document-node/core';

/**
 * Map of all GraphQL operations in the project.
 *
 * This map has several performance disadvantages:
 * 1. It is not tree-shakeable, so it will include all operations in the project.
 * 2. It is not minifiable, so the string of a GraphQL query will be multiple times inside the bundle.
 * 3. It does not support dead code elimination, so it will add unused operations.
 *
 * Therefore it is highly recommended to use the babel or swc plugin for production.
 * Learn more about it here: https://the-guild.dev/graphql/codegen/plugins/presets/preset-client#reducing-bundle-size
 */
type Documents = {
    "fragment ModelSummary on Model {\n  token\n  taskType\n  accuracy\n  downloadable\n  classes\n  createdAt\n}\n\nquery Model($token: ID!) {\n  model(token: $token) {\n    ...ModelSummary\n    accuracyPlot\n  }\n}\n\nquery Models {\n  models {\n    ...ModelSummary\n  }\n}": typeof types.ModelSummaryFragmentDoc,
    "query PlatformStatus {\n  status {\n    status\n    taskType\n    devMode\n    cleanupActive\n  }\n}\n\nmutation SetDevMode($enabled: Boolean!) {\n  setDevMode(enabled: $enabled) {\n    devMode\n  }\n}\n\nmutation SetCleanup($active: Boolean!) {\n  setCleanup(active: $active) {\n    cleanupActive\n  }\n}\n\nsubscription StatusChanged {\n  statusChanged {\n    status\n    devMode\n    cleanupActive\n  }\n}": typeof types.PlatformStatusDocument,
    "fragment EpochSummary on EpochMetrics {\n  epoch\n  trainLoss\n  trainAccuracy\n  valLoss\n  valAccuracy\n  learningRate\n  seconds\n}\n\nmutation SubmitTraining($input: TrainingInput!) {\n  submitTraining(input: $input) {\n    token\n    state\n    queuePosition\n    epochs\n  }\n}\n\nquery TrainingJob($token: ID!) {\n  trainingJob(token: $token) {\n    token\n    state\n    queuePosition\n    epochs\n    error\n    history {\n      ...EpochSummary\n    }\n    model {\n      accuracy\n    }\n  }\n}\n\nsubscription TrainingProgress($token: ID!) {\n  trainingProgress(token: $token) {\n    state\n    epoch\n    epochs\n    etaSeconds\n    message\n    queuePosition\n    batch {\n      epoch\n      batch\n      batches\n    }\n    metrics {\n      ...EpochSummary\n    }\n    model {\n      token\n      accuracy\n    }\n  }\n}\n\nmutation CancelTraining($token: ID!) {\n  cancelTraining(token: $token) {\n    state\n  }\n}": typeof types.EpochSummaryFragmentDoc,
};
const documents: Documents = {
    "fragment ModelSummary on Model {\n  token\n  taskType\n  accuracy\n  downloadable\n  classes\n  createdAt\n}\n\nquery Model($token: ID!) {\n  model(token: $token) {\n    ...ModelSummary\n    accuracyPlot\n  }\n}\n\nquery Models {\n  models {\n    ...ModelSummary\n  }\n}": types.ModelSummaryFragmentDoc,
    "query PlatformStatus {\n  status {\n    status\n    taskType\n    devMode\n    cleanupActive\n  }\n}\n\nmutation SetDevMode($enabled: Boolean!) {\n  setDevMode(enabled: $enabled) {\n    devMode\n  }\n}\n\nmutation SetCleanup($active: Boolean!) {\n  setCleanup(active: $active) {\n    cleanupActive\n  }\n}\n\nsubscription StatusChanged {\n  statusChanged {\n    status\n    devMode\n    cleanupActive\n  }\n}": types.PlatformStatusDocument,
    "fragment EpochSummary on EpochMetrics {\n  epoch\n  trainLoss\n  trainAccuracy\n  valLoss\n  valAccuracy\n  learningRate\n  seconds\n}\n\nmutation SubmitTraining($input: TrainingInput!) {\n  submitTraining(input: $input) {\n    token\n    state\n    queuePosition\n    epochs\n  }\n}\n\nquery TrainingJob($token: ID!) {\n  trainingJob(token: $token) {\n    token\n    state\n    queuePosition\n    epochs\n    error\n    history {\n      ...EpochSummary\n    }\n    model {\n      accuracy\n    }\n  }\n}\n\nsubscription TrainingProgress($token: ID!) {\n  trainingProgress(token: $token) {\n    state\n    epoch\n    epochs\n    etaSeconds\n    message\n    queuePosition\n    batch {\n      epoch\n      batch\n      batches\n    }\n    metrics {\n      ...EpochSummary\n    }\n    model {\n      token\n      accuracy\n    }\n  }\n}\n\nmutation CancelTraining($token: ID!) {\n  cancelTraining(token: $token) {\n    state\n  }\n}": types.EpochSummaryFragmentDoc,
};

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 *
 *
 * @example
 * ```ts
 * const query = graphql(`query GetUser($id: ID!) { user(id: $id) { name } }`);
 * ```
 *
 * The query argument is unknown!
 * Please regenerate the types.
 */
export function graphql(source: string): unknown;

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "fragment ModelSummary on Model {\n  token\n  taskType\n  accuracy\n  downloadable\n  classes\n  createdAt\n}\n\nquery Model($token: ID!) {\n  model(token: $token) {\n    ...ModelSummary\n    accuracyPlot\n  }\n}\n\nquery Models {\n  models {\n    ...ModelSummary\n  }\n}"): (typeof documents)["fragment ModelSummary on Model {\n  token\n  taskType\n  accuracy\n  downloadable\n  classes\n  createdAt\n}\n\nquery Model($token: ID!) {\n  model(token: $token) {\n    ...ModelSummary\n    accuracyPlot\n  }\n}\n\nquery Models {\n  models {\n    ...ModelSummary\n  }\n}"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "query PlatformStatus {\n  status {\n    status\n    taskType\n    devMode\n    cleanupActive\n  }\n}\n\nmutation SetDevMode($enabled: Boolean!) {\n  setDevMode(enabled: $enabled) {\n    devMode\n  }\n}\n\nmutation SetCleanup($active: Boolean!) {\n  setCleanup(active: $active) {\n    cleanupActive\n  }\n}\n\nsubscription StatusChanged {\n  statusChanged {\n    status\n    devMode\n    cleanupActive\n  }\n}"): (typeof documents)["query PlatformStatus {\n  status {\n    status\n    taskType\n    devMode\n    cleanupActive\n  }\n}\n\nmutation SetDevMode($enabled: Boolean!) {\n  setDevMode(enabled: $enabled) {\n    devMode\n  }\n}\n\nmutation SetCleanup($active: Boolean!) {\n  setCleanup(active: $active) {\n    cleanupActive\n  }\n}\n\nsubscription StatusChanged {\n  statusChanged {\n    status\n    devMode\n    cleanupActive\n  }\n}"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "fragment EpochSummary on EpochMetrics {\n  epoch\n  trainLoss\n  trainAccuracy\n  valLoss\n  valAccuracy\n  learningRate\n  seconds\n}\n\nmutation SubmitTraining($input: TrainingInput!) {\n  submitTraining(input: $input) {\n    token\n    state\n    queuePosition\n    epochs\n  }\n}\n\nquery TrainingJob($token: ID!) {\n  trainingJob(token: $token) {\n    token\n    state\n    queuePosition\n    epochs\n    error\n    history {\n      ...EpochSummary\n    }\n    model {\n      accuracy\n    }\n  }\n}\n\nsubscription TrainingProgress($token: ID!) {\n  trainingProgress(token: $token) {\n    state\n    epoch\n    epochs\n    etaSeconds\n    message\n    queuePosition\n    batch {\n      epoch\n      batch\n      batches\n    }\n    metrics {\n      ...EpochSummary\n    }\n    model {\n      token\n      accuracy\n    }\n  }\n}\n\nmutation CancelTraining($token: ID!) {\n  cancelTraining(token: $token) {\n    state\n  }\n}"): (typeof documents)["fragment EpochSummary on EpochMetrics {\n  epoch\n  trainLoss\n  trainAccuracy\n  valLoss\n  valAccuracy\n  learningRate\n  seconds\n}\n\nmutation SubmitTraining($input: TrainingInput!) {\n  submitTraining(input: $input) {\n    token\n    state\n    queuePosition\n    epochs\n  }\n}\n\nquery TrainingJob($token: ID!) {\n  trainingJob(token: $token) {\n    token\n    state\n    queuePosition\n    epochs\n    error\n    history {\n      ...EpochSummary\n    }\n    model {\n      accuracy\n    }\n  }\n}\n\nsubscription TrainingProgress($token: ID!) {\n  trainingProgress(token: $token) {\n    state\n    epoch\n    epochs\n    etaSeconds\n    message\n    queuePosition\n    batch {\n      epoch\n      batch\n      batches\n    }\n    metrics {\n      ...EpochSummary\n    }\n    model {\n      token\n      accuracy\n    }\n  }\n}\n\nmutation CancelTraining($token: ID!) {\n  cancelTraining(token: $token) {\n    state\n  }\n}"];

export function graphql(source: string) {
  return (documents as any)[source] ?? {};
}

export type DocumentType<TDocumentNode extends DocumentNode<any, any>> = TDocumentNode extends DocumentNode<  infer TType,  any>  ? TType  : never;