/* eslint-disable */
/** Internal type. DO NOT USE DIRECTLY. */
type Exact<T extends { [key: string]: unknown }> = { [K in keyof T]: T[K] };
/** Internal type. DO NOT USE DIRECTLY. */
export type Incremental<T> = T | { [P in keyof T]?: P extends ' $fragmentName' | '__typename' ? T[P] : never };
import type { TypedDocumentNode as DocumentNode } from '@graphql-typed-document-node/core';
/** One image class: its name and its images, one upload each. */
export type ClassImagesInput = {
  images: Array<Blob>;
  name: string;
};

/** Network to train: RESNET18, RESNET34 or MOBILENET_V2 for images; LSTM or GRU for text. */
export type ModelArchitecture =
  | 'GRU'
  | 'LSTM'
  | 'MOBILENET_V2'
  | 'RESNET18'
  | 'RESNET34';

/** PYTORCH: TorchScript (.pt), loadable with torch.jit.load; ONNX: for onnxruntime and other runtimes. */
export type ModelFormat =
  | 'ONNX'
  | 'PYTORCH';

/** SGD (momentum 0.9) or Adam. */
export type Optimizer =
  | 'ADAM'
  | 'SGD';

/** Start image models from ImageNet weights (read from the server’s weights folder) or from scratch. */
export type PretrainDataset =
  | 'IMAGENET'
  | 'SCRATCH';

/** Lower the learning rate when validation accuracy stops improving. */
export type ReduceLrOnPlateauInput = {
  /** Multiplier applied to the rate, between 0 and 1. */
  factor: number;
  /** The rate is never lowered below this. */
  minLr: number;
  /** Epochs without improvement before the rate is lowered. */
  patience: number;
};

/** Multiply the learning rate by gamma every stepSize epochs. */
export type StepLrInput = {
  gamma: number;
  stepSize: number;
};

/** What a model does. */
export type TaskType =
  | 'IMAGE_CLASSIFICATION'
  | 'TEXT_CLASSIFICATION';

/** A training job: the task, the hyperparameters and the dataset. */
export type TrainingInput = {
  batchSize: number;
  /** Images uploaded per class, instead of a ZIP. */
  classes?: Array<ClassImagesInput> | null | undefined;
  /** Training and validation percentages, such as "70 : 30" or "80:20". */
  dataSplit: string;
  /** A ZIP with one folder of images per class, or for text a CSV with columns input and label. */
  dataset?: Blob | null | undefined;
  epochs: number;
  learningRate: number;
  model: ModelArchitecture;
  optimizer: Optimizer;
  /** Images only; default SCRATCH. */
  pretrainDataset?: PretrainDataset | null | undefined;
  reduceLrOnPlateau?: ReduceLrOnPlateauInput | null | undefined;
  stepLr?: StepLrInput | null | undefined;
  /** Letters, digits, spaces and hyphens; part of the model token. */
  taskName: string;
  taskType: TaskType;
};

/** Whether the training server is running a job (`ACTIVE`) or idle (`SLEEPING`). */
export type TrainingServerStatus =
  | 'ACTIVE'
  | 'SLEEPING';

/** QUEUED → PREPARING → TRAINING → EXPORTING → DEPLOYED, or FAILED / CANCELLED; a DEPLOYED job becomes DELETED once its model is deleted (deleteModel, or expiry). */
export type TrainingState =
  | 'CANCELLED'
  /** The job deployed its model, which has since been deleted by deleteModel or after its time to live; its history stays, its model is null. */
  | 'DELETED'
  | 'DEPLOYED'
  | 'EXPORTING'
  | 'FAILED'
  | 'PREPARING'
  | 'QUEUED'
  | 'TRAINING';

export type ModelSummaryFragment = { token: string, taskType: TaskType, accuracy: number, downloadable: boolean, classes: Array<string> | null, createdAt: string };

export type ModelQueryVariables = Exact<{
  token: string;
}>;


export type ModelQuery = { model: { accuracyPlot: string, token: string, taskType: TaskType, accuracy: number, downloadable: boolean, classes: Array<string> | null, createdAt: string } | null };

export type ModelsQueryVariables = Exact<{ [key: string]: never; }>;


export type ModelsQuery = { models: Array<{ expiresAt: string | null, token: string, taskType: TaskType, accuracy: number, downloadable: boolean, classes: Array<string> | null, createdAt: string }> | null };

export type PlatformStatusQueryVariables = Exact<{ [key: string]: never; }>;


export type PlatformStatusQuery = { status: { status: TrainingServerStatus, taskType: TaskType | null, devMode: boolean, cleanupActive: boolean } | null };

export type SetDevModeMutationVariables = Exact<{
  enabled: boolean;
}>;


export type SetDevModeMutation = { setDevMode: { devMode: boolean } | null };

export type SetCleanupMutationVariables = Exact<{
  active: boolean;
}>;


export type SetCleanupMutation = { setCleanup: { cleanupActive: boolean } | null };

export type StatusChangedSubscriptionVariables = Exact<{ [key: string]: never; }>;


export type StatusChangedSubscription = { statusChanged: { status: TrainingServerStatus, devMode: boolean, cleanupActive: boolean } };

export type PredictionResultFragment = { label: string, probability: number, top: Array<{ label: string, probability: number }> };

export type ClassifyImageMutationVariables = Exact<{
  token: string;
  image?: Blob | null | undefined;
  imageBase64?: string | null | undefined;
  topK?: number | null | undefined;
}>;


export type ClassifyImageMutation = { classifyImage: { label: string, probability: number, top: Array<{ label: string, probability: number }> } | null };

export type ClassifyImagesMutationVariables = Exact<{
  token: string;
  images: Array<Blob> | Blob;
  topK?: number | null | undefined;
}>;


export type ClassifyImagesMutation = { classifyImages: Array<{ label: string, probability: number, top: Array<{ label: string, probability: number }> }> | null };

export type ClassifyTextMutationVariables = Exact<{
  token: string;
  text: string;
  topK?: number | null | undefined;
}>;


export type ClassifyTextMutation = { classifyText: { label: string, probability: number, top: Array<{ label: string, probability: number }> } | null };

export type ClassifyTextsMutationVariables = Exact<{
  token: string;
  texts: Array<string> | string;
  topK?: number | null | undefined;
}>;


export type ClassifyTextsMutation = { classifyTexts: Array<{ label: string, probability: number, top: Array<{ label: string, probability: number }> }> | null };

export type DownloadModelMutationVariables = Exact<{
  token: string;
  format: ModelFormat;
}>;


export type DownloadModelMutation = { downloadModel: { url: string, expiresAt: string, filename: string, vocabularyUrl: string | null } | null };

export type DeleteModelMutationVariables = Exact<{
  token: string;
}>;


export type DeleteModelMutation = { deleteModel: boolean | null };

export type RunCleanupMutationVariables = Exact<{ [key: string]: never; }>;


export type RunCleanupMutation = { runCleanup: Array<string> | null };

export type EpochSummaryFragment = { epoch: number, trainLoss: number | null, trainAccuracy: number, valLoss: number | null, valAccuracy: number, learningRate: number, seconds: number };

export type SubmitTrainingMutationVariables = Exact<{
  input: TrainingInput;
}>;


export type SubmitTrainingMutation = { submitTraining: { token: string, state: TrainingState, queuePosition: number | null, epochs: number } | null };

export type TrainingJobQueryVariables = Exact<{
  token: string;
}>;


export type TrainingJobQuery = { trainingJob: { token: string, state: TrainingState, queuePosition: number | null, epochs: number, error: string | null, history: Array<{ epoch: number, trainLoss: number | null, trainAccuracy: number, valLoss: number | null, valAccuracy: number, learningRate: number, seconds: number }>, model: { accuracy: number } | null } | null };

export type TrainingProgressSubscriptionVariables = Exact<{
  token: string;
}>;


export type TrainingProgressSubscription = { trainingProgress: { state: TrainingState, epoch: number, epochs: number, etaSeconds: number | null, message: string | null, queuePosition: number | null, batch: { epoch: number, batch: number, batches: number } | null, metrics: { epoch: number, trainLoss: number | null, trainAccuracy: number, valLoss: number | null, valAccuracy: number, learningRate: number, seconds: number } | null, model: { token: string, taskType: TaskType, accuracy: number } | null } };

export type CancelTrainingMutationVariables = Exact<{
  token: string;
}>;


export type CancelTrainingMutation = { cancelTraining: { state: TrainingState } | null };

export const ModelSummaryFragmentDoc = {"kind":"Document","definitions":[{"kind":"FragmentDefinition","name":{"kind":"Name","value":"ModelSummary"},"typeCondition":{"kind":"NamedType","name":{"kind":"Name","value":"Model"}},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"token"}},{"kind":"Field","name":{"kind":"Name","value":"taskType"}},{"kind":"Field","name":{"kind":"Name","value":"accuracy"}},{"kind":"Field","name":{"kind":"Name","value":"downloadable"}},{"kind":"Field","name":{"kind":"Name","value":"classes"}},{"kind":"Field","name":{"kind":"Name","value":"createdAt"}}]}}]} as unknown as DocumentNode<ModelSummaryFragment, unknown>;
export const PredictionResultFragmentDoc = {"kind":"Document","definitions":[{"kind":"FragmentDefinition","name":{"kind":"Name","value":"PredictionResult"},"typeCondition":{"kind":"NamedType","name":{"kind":"Name","value":"Prediction"}},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"label"}},{"kind":"Field","name":{"kind":"Name","value":"probability"}},{"kind":"Field","name":{"kind":"Name","value":"top"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"label"}},{"kind":"Field","name":{"kind":"Name","value":"probability"}}]}}]}}]} as unknown as DocumentNode<PredictionResultFragment, unknown>;
export const EpochSummaryFragmentDoc = {"kind":"Document","definitions":[{"kind":"FragmentDefinition","name":{"kind":"Name","value":"EpochSummary"},"typeCondition":{"kind":"NamedType","name":{"kind":"Name","value":"EpochMetrics"}},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"epoch"}},{"kind":"Field","name":{"kind":"Name","value":"trainLoss"}},{"kind":"Field","name":{"kind":"Name","value":"trainAccuracy"}},{"kind":"Field","name":{"kind":"Name","value":"valLoss"}},{"kind":"Field","name":{"kind":"Name","value":"valAccuracy"}},{"kind":"Field","name":{"kind":"Name","value":"learningRate"}},{"kind":"Field","name":{"kind":"Name","value":"seconds"}}]}}]} as unknown as DocumentNode<EpochSummaryFragment, unknown>;
export const ModelDocument = {"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"query","name":{"kind":"Name","value":"Model"},"variableDefinitions":[{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"token"}},"type":{"kind":"NonNullType","type":{"kind":"NamedType","name":{"kind":"Name","value":"ID"}}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"model"},"arguments":[{"kind":"Argument","name":{"kind":"Name","value":"token"},"value":{"kind":"Variable","name":{"kind":"Name","value":"token"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"FragmentSpread","name":{"kind":"Name","value":"ModelSummary"}},{"kind":"Field","name":{"kind":"Name","value":"accuracyPlot"}}]}}]}},{"kind":"FragmentDefinition","name":{"kind":"Name","value":"ModelSummary"},"typeCondition":{"kind":"NamedType","name":{"kind":"Name","value":"Model"}},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"token"}},{"kind":"Field","name":{"kind":"Name","value":"taskType"}},{"kind":"Field","name":{"kind":"Name","value":"accuracy"}},{"kind":"Field","name":{"kind":"Name","value":"downloadable"}},{"kind":"Field","name":{"kind":"Name","value":"classes"}},{"kind":"Field","name":{"kind":"Name","value":"createdAt"}}]}}]} as unknown as DocumentNode<ModelQuery, ModelQueryVariables>;
export const ModelsDocument = {"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"query","name":{"kind":"Name","value":"Models"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"models"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"FragmentSpread","name":{"kind":"Name","value":"ModelSummary"}},{"kind":"Field","name":{"kind":"Name","value":"expiresAt"}}]}}]}},{"kind":"FragmentDefinition","name":{"kind":"Name","value":"ModelSummary"},"typeCondition":{"kind":"NamedType","name":{"kind":"Name","value":"Model"}},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"token"}},{"kind":"Field","name":{"kind":"Name","value":"taskType"}},{"kind":"Field","name":{"kind":"Name","value":"accuracy"}},{"kind":"Field","name":{"kind":"Name","value":"downloadable"}},{"kind":"Field","name":{"kind":"Name","value":"classes"}},{"kind":"Field","name":{"kind":"Name","value":"createdAt"}}]}}]} as unknown as DocumentNode<ModelsQuery, ModelsQueryVariables>;
export const PlatformStatusDocument = {"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"query","name":{"kind":"Name","value":"PlatformStatus"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"status"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"status"}},{"kind":"Field","name":{"kind":"Name","value":"taskType"}},{"kind":"Field","name":{"kind":"Name","value":"devMode"}},{"kind":"Field","name":{"kind":"Name","value":"cleanupActive"}}]}}]}}]} as unknown as DocumentNode<PlatformStatusQuery, PlatformStatusQueryVariables>;
export const SetDevModeDocument = {"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"mutation","name":{"kind":"Name","value":"SetDevMode"},"variableDefinitions":[{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"enabled"}},"type":{"kind":"NonNullType","type":{"kind":"NamedType","name":{"kind":"Name","value":"Boolean"}}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"setDevMode"},"arguments":[{"kind":"Argument","name":{"kind":"Name","value":"enabled"},"value":{"kind":"Variable","name":{"kind":"Name","value":"enabled"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"devMode"}}]}}]}}]} as unknown as DocumentNode<SetDevModeMutation, SetDevModeMutationVariables>;
export const SetCleanupDocument = {"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"mutation","name":{"kind":"Name","value":"SetCleanup"},"variableDefinitions":[{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"active"}},"type":{"kind":"NonNullType","type":{"kind":"NamedType","name":{"kind":"Name","value":"Boolean"}}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"setCleanup"},"arguments":[{"kind":"Argument","name":{"kind":"Name","value":"active"},"value":{"kind":"Variable","name":{"kind":"Name","value":"active"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"cleanupActive"}}]}}]}}]} as unknown as DocumentNode<SetCleanupMutation, SetCleanupMutationVariables>;
export const StatusChangedDocument = {"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"subscription","name":{"kind":"Name","value":"StatusChanged"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"statusChanged"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"status"}},{"kind":"Field","name":{"kind":"Name","value":"devMode"}},{"kind":"Field","name":{"kind":"Name","value":"cleanupActive"}}]}}]}}]} as unknown as DocumentNode<StatusChangedSubscription, StatusChangedSubscriptionVariables>;
export const ClassifyImageDocument = {"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"mutation","name":{"kind":"Name","value":"ClassifyImage"},"variableDefinitions":[{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"token"}},"type":{"kind":"NonNullType","type":{"kind":"NamedType","name":{"kind":"Name","value":"ID"}}}},{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"image"}},"type":{"kind":"NamedType","name":{"kind":"Name","value":"Upload"}}},{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"imageBase64"}},"type":{"kind":"NamedType","name":{"kind":"Name","value":"String"}}},{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"topK"}},"type":{"kind":"NamedType","name":{"kind":"Name","value":"Int"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"classifyImage"},"arguments":[{"kind":"Argument","name":{"kind":"Name","value":"token"},"value":{"kind":"Variable","name":{"kind":"Name","value":"token"}}},{"kind":"Argument","name":{"kind":"Name","value":"image"},"value":{"kind":"Variable","name":{"kind":"Name","value":"image"}}},{"kind":"Argument","name":{"kind":"Name","value":"imageBase64"},"value":{"kind":"Variable","name":{"kind":"Name","value":"imageBase64"}}},{"kind":"Argument","name":{"kind":"Name","value":"topK"},"value":{"kind":"Variable","name":{"kind":"Name","value":"topK"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"FragmentSpread","name":{"kind":"Name","value":"PredictionResult"}}]}}]}},{"kind":"FragmentDefinition","name":{"kind":"Name","value":"PredictionResult"},"typeCondition":{"kind":"NamedType","name":{"kind":"Name","value":"Prediction"}},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"label"}},{"kind":"Field","name":{"kind":"Name","value":"probability"}},{"kind":"Field","name":{"kind":"Name","value":"top"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"label"}},{"kind":"Field","name":{"kind":"Name","value":"probability"}}]}}]}}]} as unknown as DocumentNode<ClassifyImageMutation, ClassifyImageMutationVariables>;
export const ClassifyImagesDocument = {"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"mutation","name":{"kind":"Name","value":"ClassifyImages"},"variableDefinitions":[{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"token"}},"type":{"kind":"NonNullType","type":{"kind":"NamedType","name":{"kind":"Name","value":"ID"}}}},{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"images"}},"type":{"kind":"NonNullType","type":{"kind":"ListType","type":{"kind":"NonNullType","type":{"kind":"NamedType","name":{"kind":"Name","value":"Upload"}}}}}},{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"topK"}},"type":{"kind":"NamedType","name":{"kind":"Name","value":"Int"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"classifyImages"},"arguments":[{"kind":"Argument","name":{"kind":"Name","value":"token"},"value":{"kind":"Variable","name":{"kind":"Name","value":"token"}}},{"kind":"Argument","name":{"kind":"Name","value":"images"},"value":{"kind":"Variable","name":{"kind":"Name","value":"images"}}},{"kind":"Argument","name":{"kind":"Name","value":"topK"},"value":{"kind":"Variable","name":{"kind":"Name","value":"topK"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"FragmentSpread","name":{"kind":"Name","value":"PredictionResult"}}]}}]}},{"kind":"FragmentDefinition","name":{"kind":"Name","value":"PredictionResult"},"typeCondition":{"kind":"NamedType","name":{"kind":"Name","value":"Prediction"}},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"label"}},{"kind":"Field","name":{"kind":"Name","value":"probability"}},{"kind":"Field","name":{"kind":"Name","value":"top"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"label"}},{"kind":"Field","name":{"kind":"Name","value":"probability"}}]}}]}}]} as unknown as DocumentNode<ClassifyImagesMutation, ClassifyImagesMutationVariables>;
export const ClassifyTextDocument = {"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"mutation","name":{"kind":"Name","value":"ClassifyText"},"variableDefinitions":[{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"token"}},"type":{"kind":"NonNullType","type":{"kind":"NamedType","name":{"kind":"Name","value":"ID"}}}},{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"text"}},"type":{"kind":"NonNullType","type":{"kind":"NamedType","name":{"kind":"Name","value":"String"}}}},{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"topK"}},"type":{"kind":"NamedType","name":{"kind":"Name","value":"Int"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"classifyText"},"arguments":[{"kind":"Argument","name":{"kind":"Name","value":"token"},"value":{"kind":"Variable","name":{"kind":"Name","value":"token"}}},{"kind":"Argument","name":{"kind":"Name","value":"text"},"value":{"kind":"Variable","name":{"kind":"Name","value":"text"}}},{"kind":"Argument","name":{"kind":"Name","value":"topK"},"value":{"kind":"Variable","name":{"kind":"Name","value":"topK"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"FragmentSpread","name":{"kind":"Name","value":"PredictionResult"}}]}}]}},{"kind":"FragmentDefinition","name":{"kind":"Name","value":"PredictionResult"},"typeCondition":{"kind":"NamedType","name":{"kind":"Name","value":"Prediction"}},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"label"}},{"kind":"Field","name":{"kind":"Name","value":"probability"}},{"kind":"Field","name":{"kind":"Name","value":"top"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"label"}},{"kind":"Field","name":{"kind":"Name","value":"probability"}}]}}]}}]} as unknown as DocumentNode<ClassifyTextMutation, ClassifyTextMutationVariables>;
export const ClassifyTextsDocument = {"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"mutation","name":{"kind":"Name","value":"ClassifyTexts"},"variableDefinitions":[{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"token"}},"type":{"kind":"NonNullType","type":{"kind":"NamedType","name":{"kind":"Name","value":"ID"}}}},{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"texts"}},"type":{"kind":"NonNullType","type":{"kind":"ListType","type":{"kind":"NonNullType","type":{"kind":"NamedType","name":{"kind":"Name","value":"String"}}}}}},{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"topK"}},"type":{"kind":"NamedType","name":{"kind":"Name","value":"Int"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"classifyTexts"},"arguments":[{"kind":"Argument","name":{"kind":"Name","value":"token"},"value":{"kind":"Variable","name":{"kind":"Name","value":"token"}}},{"kind":"Argument","name":{"kind":"Name","value":"texts"},"value":{"kind":"Variable","name":{"kind":"Name","value":"texts"}}},{"kind":"Argument","name":{"kind":"Name","value":"topK"},"value":{"kind":"Variable","name":{"kind":"Name","value":"topK"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"FragmentSpread","name":{"kind":"Name","value":"PredictionResult"}}]}}]}},{"kind":"FragmentDefinition","name":{"kind":"Name","value":"PredictionResult"},"typeCondition":{"kind":"NamedType","name":{"kind":"Name","value":"Prediction"}},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"label"}},{"kind":"Field","name":{"kind":"Name","value":"probability"}},{"kind":"Field","name":{"kind":"Name","value":"top"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"label"}},{"kind":"Field","name":{"kind":"Name","value":"probability"}}]}}]}}]} as unknown as DocumentNode<ClassifyTextsMutation, ClassifyTextsMutationVariables>;
export const DownloadModelDocument = {"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"mutation","name":{"kind":"Name","value":"DownloadModel"},"variableDefinitions":[{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"token"}},"type":{"kind":"NonNullType","type":{"kind":"NamedType","name":{"kind":"Name","value":"ID"}}}},{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"format"}},"type":{"kind":"NonNullType","type":{"kind":"NamedType","name":{"kind":"Name","value":"ModelFormat"}}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"downloadModel"},"arguments":[{"kind":"Argument","name":{"kind":"Name","value":"token"},"value":{"kind":"Variable","name":{"kind":"Name","value":"token"}}},{"kind":"Argument","name":{"kind":"Name","value":"format"},"value":{"kind":"Variable","name":{"kind":"Name","value":"format"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"url"}},{"kind":"Field","name":{"kind":"Name","value":"expiresAt"}},{"kind":"Field","name":{"kind":"Name","value":"filename"}},{"kind":"Field","name":{"kind":"Name","value":"vocabularyUrl"}}]}}]}}]} as unknown as DocumentNode<DownloadModelMutation, DownloadModelMutationVariables>;
export const DeleteModelDocument = {"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"mutation","name":{"kind":"Name","value":"DeleteModel"},"variableDefinitions":[{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"token"}},"type":{"kind":"NonNullType","type":{"kind":"NamedType","name":{"kind":"Name","value":"ID"}}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"deleteModel"},"arguments":[{"kind":"Argument","name":{"kind":"Name","value":"token"},"value":{"kind":"Variable","name":{"kind":"Name","value":"token"}}}]}]}}]} as unknown as DocumentNode<DeleteModelMutation, DeleteModelMutationVariables>;
export const RunCleanupDocument = {"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"mutation","name":{"kind":"Name","value":"RunCleanup"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"runCleanup"}}]}}]} as unknown as DocumentNode<RunCleanupMutation, RunCleanupMutationVariables>;
export const SubmitTrainingDocument = {"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"mutation","name":{"kind":"Name","value":"SubmitTraining"},"variableDefinitions":[{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"input"}},"type":{"kind":"NonNullType","type":{"kind":"NamedType","name":{"kind":"Name","value":"TrainingInput"}}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"submitTraining"},"arguments":[{"kind":"Argument","name":{"kind":"Name","value":"input"},"value":{"kind":"Variable","name":{"kind":"Name","value":"input"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"token"}},{"kind":"Field","name":{"kind":"Name","value":"state"}},{"kind":"Field","name":{"kind":"Name","value":"queuePosition"}},{"kind":"Field","name":{"kind":"Name","value":"epochs"}}]}}]}}]} as unknown as DocumentNode<SubmitTrainingMutation, SubmitTrainingMutationVariables>;
export const TrainingJobDocument = {"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"query","name":{"kind":"Name","value":"TrainingJob"},"variableDefinitions":[{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"token"}},"type":{"kind":"NonNullType","type":{"kind":"NamedType","name":{"kind":"Name","value":"ID"}}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"trainingJob"},"arguments":[{"kind":"Argument","name":{"kind":"Name","value":"token"},"value":{"kind":"Variable","name":{"kind":"Name","value":"token"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"token"}},{"kind":"Field","name":{"kind":"Name","value":"state"}},{"kind":"Field","name":{"kind":"Name","value":"queuePosition"}},{"kind":"Field","name":{"kind":"Name","value":"epochs"}},{"kind":"Field","name":{"kind":"Name","value":"error"}},{"kind":"Field","name":{"kind":"Name","value":"history"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"FragmentSpread","name":{"kind":"Name","value":"EpochSummary"}}]}},{"kind":"Field","name":{"kind":"Name","value":"model"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"accuracy"}}]}}]}}]}},{"kind":"FragmentDefinition","name":{"kind":"Name","value":"EpochSummary"},"typeCondition":{"kind":"NamedType","name":{"kind":"Name","value":"EpochMetrics"}},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"epoch"}},{"kind":"Field","name":{"kind":"Name","value":"trainLoss"}},{"kind":"Field","name":{"kind":"Name","value":"trainAccuracy"}},{"kind":"Field","name":{"kind":"Name","value":"valLoss"}},{"kind":"Field","name":{"kind":"Name","value":"valAccuracy"}},{"kind":"Field","name":{"kind":"Name","value":"learningRate"}},{"kind":"Field","name":{"kind":"Name","value":"seconds"}}]}}]} as unknown as DocumentNode<TrainingJobQuery, TrainingJobQueryVariables>;
export const TrainingProgressDocument = {"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"subscription","name":{"kind":"Name","value":"TrainingProgress"},"variableDefinitions":[{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"token"}},"type":{"kind":"NonNullType","type":{"kind":"NamedType","name":{"kind":"Name","value":"ID"}}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"trainingProgress"},"arguments":[{"kind":"Argument","name":{"kind":"Name","value":"token"},"value":{"kind":"Variable","name":{"kind":"Name","value":"token"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"state"}},{"kind":"Field","name":{"kind":"Name","value":"epoch"}},{"kind":"Field","name":{"kind":"Name","value":"epochs"}},{"kind":"Field","name":{"kind":"Name","value":"etaSeconds"}},{"kind":"Field","name":{"kind":"Name","value":"message"}},{"kind":"Field","name":{"kind":"Name","value":"queuePosition"}},{"kind":"Field","name":{"kind":"Name","value":"batch"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"epoch"}},{"kind":"Field","name":{"kind":"Name","value":"batch"}},{"kind":"Field","name":{"kind":"Name","value":"batches"}}]}},{"kind":"Field","name":{"kind":"Name","value":"metrics"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"FragmentSpread","name":{"kind":"Name","value":"EpochSummary"}}]}},{"kind":"Field","name":{"kind":"Name","value":"model"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"token"}},{"kind":"Field","name":{"kind":"Name","value":"taskType"}},{"kind":"Field","name":{"kind":"Name","value":"accuracy"}}]}}]}}]}},{"kind":"FragmentDefinition","name":{"kind":"Name","value":"EpochSummary"},"typeCondition":{"kind":"NamedType","name":{"kind":"Name","value":"EpochMetrics"}},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"epoch"}},{"kind":"Field","name":{"kind":"Name","value":"trainLoss"}},{"kind":"Field","name":{"kind":"Name","value":"trainAccuracy"}},{"kind":"Field","name":{"kind":"Name","value":"valLoss"}},{"kind":"Field","name":{"kind":"Name","value":"valAccuracy"}},{"kind":"Field","name":{"kind":"Name","value":"learningRate"}},{"kind":"Field","name":{"kind":"Name","value":"seconds"}}]}}]} as unknown as DocumentNode<TrainingProgressSubscription, TrainingProgressSubscriptionVariables>;
export const CancelTrainingDocument = {"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"mutation","name":{"kind":"Name","value":"CancelTraining"},"variableDefinitions":[{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"token"}},"type":{"kind":"NonNullType","type":{"kind":"NamedType","name":{"kind":"Name","value":"ID"}}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"cancelTraining"},"arguments":[{"kind":"Argument","name":{"kind":"Name","value":"token"},"value":{"kind":"Variable","name":{"kind":"Name","value":"token"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"state"}}]}}]}}]} as unknown as DocumentNode<CancelTrainingMutation, CancelTrainingMutationVariables>;