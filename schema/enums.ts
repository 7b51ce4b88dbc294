import { registerEnumType } from 'type-graphql';

export enum TaskType {
  IMAGE_CLASSIFICATION = 'imageclassification',
  TEXT_CLASSIFICATION = 'textclassification',
}
registerEnumType(TaskType, { name: 'TaskType', description: 'What a model does.' });

export enum TrainingServerStatus {
  ACTIVE = 'active',
  SLEEPING = 'sleeping',
}
registerEnumType(TrainingServerStatus, {
  name: 'TrainingServerStatus',
  description: 'Whether the training server is running a job (`ACTIVE`) or idle (`SLEEPING`).',
});

export enum ModelArchitecture {
  RESNET18 = 'resnet18',
  RESNET34 = 'resnet34',
  MOBILENET_V2 = 'mobilenet v2',
  LSTM = 'lstm',
  GRU = 'gru',
}
registerEnumType(ModelArchitecture, {
  name: 'ModelArchitecture',
  description: 'Network to train: RESNET18, RESNET34 or MOBILENET_V2 for images; LSTM or GRU for text.',
});

export enum Optimizer {
  SGD = 'sgd',
  ADAM = 'adam',
}
registerEnumType(Optimizer, { name: 'Optimizer', description: 'SGD (momentum 0.9) or Adam.' });

export enum PretrainDataset {
  IMAGENET = 'imagenet',
  SCRATCH = 'scratch',
}
registerEnumType(PretrainDataset, {
  name: 'PretrainDataset',
  description: 'Start image models from ImageNet weights (read from the server’s weights folder) or from scratch.',
});

export enum TrainingState {
  QUEUED = 'QUEUED',
  PREPARING = 'PREPARING',
  TRAINING = 'TRAINING',
  EXPORTING = 'EXPORTING',
  DEPLOYED = 'DEPLOYED',
  FAILED = 'FAILED',
  CANCELLED = 'CANCELLED',
  DELETED = 'DELETED',
}
registerEnumType(TrainingState, {
  name: 'TrainingState',
  description:
    'QUEUED → PREPARING → TRAINING → EXPORTING → DEPLOYED, or FAILED / CANCELLED; a DEPLOYED job becomes DELETED once its model is deleted (deleteModel, or expiry).',
  valuesConfig: {
    DELETED: {
      description:
        'The job deployed its model, which has since been deleted by deleteModel or after its time to live; its history stays, its model is null.',
    },
  },
});

export enum ModelFormat {
  PYTORCH = 'pytorch',
  ONNX = 'onnx',
}
registerEnumType(ModelFormat, {
  name: 'ModelFormat',
  description: 'PYTORCH: TorchScript (.pt), loadable with torch.jit.load; ONNX: for onnxruntime and other runtimes.',
});
