import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';

import { describeError, FlashClient, GraphQLRequestError } from './client';
import { download } from './commands/download';
import { predict } from './commands/predict';
import { follow, train, type TrainOptions } from './commands/train';
import type { ModelArchitecture, ModelFormat, Optimizer, PretrainDataset, TaskType } from '../gql/graphql';
import type { Streams } from './output';

const DEFAULT_URL = 'http://localhost:4000/graphql';

/** Every value of a generated enum type: the compiler checks that none is missing. */
const valuesOf = <T extends string>(all: Record<T, true>) => Object.keys(all) as T[];
const ARCHITECTURES = valuesOf<ModelArchitecture>({ MOBILENET_V2: true, RESNET18: true, RESNET34: true, GRU: true, LSTM: true });
const OPTIMIZERS = valuesOf<Optimizer>({ ADAM: true, SGD: true });
const PRETRAIN = valuesOf<PretrainDataset>({ SCRATCH: true, IMAGENET: true });
const TASKS: Record<string, TaskType> = { image: 'IMAGE_CLASSIFICATION', text: 'TEXT_CLASSIFICATION' };
const FORMATS: Record<Lowercase<ModelFormat>, ModelFormat> = { onnx: 'ONNX', pytorch: 'PYTORCH' };

const EXAMPLES = `
Examples:
  $ flash train reviews.csv --name reviews --epochs 3
  $ flash train pets/ --name pets --model RESNET18 --batch-size 16 --split "80 : 20"
  $ flash predict <token> cat.jpg dog.jpg --top-k 2
  $ flash predict <token> --text "what a wonderful film"
  $ flash download <token> --format pytorch -o model.pt`;

/**
 * Runs the command line `argv` (without `node` and the script) and resolves to the exit code:
 * 0 on success, 1 on an error, a failed or cancelled job. Output goes to `io`, so tests can run
 * it in-process.
 */
export async function main(argv: readonly string[], io: Streams = process): Promise<number> {
  let exitCode = 0;
  const clientOf = (command: Command) => new FlashClient(command.optsWithGlobals<{ url: string }>().url);

  // Settings made here are inherited by the subcommands, which must be added after them.
  const program = new Command('flash')
    .description('Train, deploy and use models on a Flash API server.')
    .addOption(new Option('--url <url>', 'GraphQL endpoint of the server').default(DEFAULT_URL).argParser(url))
    .exitOverride()
    .configureOutput({ writeOut: (text) => io.stdout.write(text), writeErr: (text) => io.stderr.write(text) })
    .showHelpAfterError('(add --help for usage)')
    .addHelpText('after', EXAMPLES);

  program
    .command('train')
    .description('upload a dataset, train a model and follow its progress')
    .argument('<dataset>', 'a folder of class folders of images, a ZIP of them, or a CSV with columns input,label')
    .addOption(new Option('--task <task>', 'what the model classifies (default: text for a CSV, else image)').choices(Object.keys(TASKS)))
    .option('--name <name>', 'task name: letters, digits, spaces, hyphens (default: from the dataset)')
    .addOption(new Option('--model <architecture>', 'network (default: MOBILENET_V2 for images, GRU for text)').choices(ARCHITECTURES))
    .addOption(new Option('--optimizer <optimizer>', 'optimizer').choices(OPTIMIZERS).default('ADAM'))
    .option('--lr <rate>', 'learning rate', positiveNumber, 0.001)
    .option('--batch-size <size>', 'batch size', positiveInteger, 16)
    .option('--epochs <count>', 'epochs', positiveInteger, 5)
    .option('--split <train:validation>', 'training and validation percentages', '80 : 20')
    .addOption(new Option('--pretrain <weights>', 'image models: start from scratch or ImageNet (default: SCRATCH)').choices(PRETRAIN))
    .action(async (dataset: string, options: TrainCommandOptions, command: Command) => {
      const task = options.task === undefined ? undefined : TASKS[options.task];
      exitCode = await train(clientOf(command), dataset, { ...options, task }, io);
    });

  program
    .command('watch')
    .description('follow the progress of a submitted training job')
    .argument('<token>', 'the job’s token')
    .action(async (token: string, _options: unknown, command: Command) => {
      exitCode = await follow(clientOf(command), token, io);
    });

  program
    .command('predict')
    .description('classify images, or texts with --text, and print the top classes')
    .argument('<token>', 'the model’s token')
    .argument('[images...]', 'image files')
    .option('--text <text>', 'a text to classify (repeatable)', (text: string, texts: string[]) => [...texts, text], [])
    .option('--top-k <k>', 'how many classes to list per input (server default: 5)', positiveInteger)
    .action(async (token: string, images: string[], options: { text: string[]; topK?: number }, command: Command) => {
      if ((images.length > 0) === (options.text.length > 0)) command.error('error: give either image files or --text');
      exitCode = await predict(clientOf(command), token, images, { texts: options.text, topK: options.topK }, io);
    });

  program
    .command('download')
    .description('download a model’s weights (and a text model’s vocabulary)')
    .argument('<token>', 'the model’s token')
    .addOption(new Option('--format <format>', 'file format').choices(Object.keys(FORMATS)).default('onnx'))
    .option('-o, --output <path>', 'file or folder to save to (default: the server’s file name, here)')
    .action(async (token: string, options: { format: keyof typeof FORMATS; output?: string }, command: Command) => {
      exitCode = await download(clientOf(command), token, { format: FORMATS[options.format], output: options.output }, io);
    });

  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode; // commander printed it
    const lines = error instanceof GraphQLRequestError ? error.errors.map(describeError) : [(error as Error).message];
    io.stderr.write(lines.map((line) => `error: ${line}\n`).join(''));
    return 1;
  }
}

/** The train command's options as commander parses them: `--task` still unchecked. */
type TrainCommandOptions = Omit<TrainOptions, 'task'> & { task?: string };

function url(value: string): string {
  if (!URL.canParse(value)) throw new InvalidArgumentError('Not a URL.');
  return value;
}

function positiveNumber(value: string): number {
  const number = Number(value);
  if (!(number > 0)) throw new InvalidArgumentError('Not a positive number.');
  return number;
}

function positiveInteger(value: string): number {
  const number = Number(value);
  if (!Number.isInteger(number) || number < 1) throw new InvalidArgumentError('Not a positive integer.');
  return number;
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
