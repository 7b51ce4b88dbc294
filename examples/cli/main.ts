import path from 'node:path';

import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';

import { describeError, FlashClient, GraphQLRequestError } from './client';
import { download } from './commands/download';
import { cancel, models, remove } from './commands/manage';
import { predict } from './commands/predict';
import { status } from './commands/status';
import { follow, type Invocation, train, type TrainOptions } from './commands/train';
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
  $ flash download <token> --format pytorch -o model.pt
  $ flash status <token>
  $ FLASH_ADMIN_KEY=… flash models

Environment:
  FLASH_URL        the server's GraphQL endpoint, when --url is not given
  FLASH_ADMIN_KEY  the admin key, when --admin-key is not given`;

/** What `main` reads from the environment; `INIT_CWD` is where the user ran `npm run flash`. */
export type Environment = Readonly<Record<string, string | undefined>>;

/**
 * Runs the command line `argv` (without `node` and the script) and resolves to the exit code:
 * 0 on success, 1 on an error, a failed or cancelled job. Output goes to `io`, so tests can run
 * it in-process.
 */
export async function main(argv: readonly string[], io: Streams = process, env: Environment = process.env): Promise<number> {
  let exitCode = 0;
  const defaultUrl = env.FLASH_URL || DEFAULT_URL;
  const clientOf = (command: Command, adminKey?: string) => new FlashClient(command.optsWithGlobals<{ url: string }>().url, adminKey);
  // `npm run` starts the script in the package's folder; paths are the user's, from where they ran it.
  const here = (file: string) => path.resolve(env.INIT_CWD || process.cwd(), file);
  const invocation = (command: Command): Invocation => {
    const { url } = command.optsWithGlobals<{ url: string }>();
    return {
      command: env.npm_lifecycle_event === 'flash' ? 'npm run flash --' : 'flash',
      urlFlag: url === defaultUrl ? '' : ` --url ${url}`,
    };
  };

  // Settings made here are inherited by the subcommands, which must be added after them.
  const program = new Command('flash')
    .description('Train, deploy and use models on a Flash API server.')
    .addOption(
      new Option('--url <url>', 'GraphQL endpoint of the server')
        .default(defaultUrl, env.FLASH_URL ? '$FLASH_URL' : DEFAULT_URL)
        .argParser(url),
    )
    .exitOverride()
    .configureOutput({ writeOut: (text) => io.stdout.write(text), writeErr: (text) => io.stderr.write(text) })
    .showHelpAfterError('(add --help for usage)')
    .addHelpText('after', EXAMPLES);
  // A default is not parsed: FLASH_URL is checked here, and only when --url does not replace it.
  program.hook('preAction', (_program, action) => {
    const { url: chosen } = action.optsWithGlobals<{ url: string }>();
    if (chosen === env.FLASH_URL && !URL.canParse(chosen)) action.error(`error: FLASH_URL is not a URL: ${chosen}`);
  });

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
      exitCode = await train(clientOf(command), here(dataset), { ...options, task }, io, invocation(command));
    });

  program
    .command('watch')
    .description('follow the progress of a submitted training job')
    .argument('<token>', 'the job’s token')
    .action(async (token: string, _options: unknown, command: Command) => {
      exitCode = await follow(clientOf(command), token, io, invocation(command));
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
      exitCode = await predict(clientOf(command), token, images.map(here), { texts: options.text, topK: options.topK }, io);
    });

  program
    .command('download')
    .description('download a model’s weights (and a text model’s vocabulary)')
    .argument('<token>', 'the model’s token')
    .addOption(new Option('--format <format>', 'file format').choices(Object.keys(FORMATS)).default('onnx'))
    .option('-o, --output <path>', 'file or folder to save to (default: the server’s file name, here)')
    .action(async (token: string, options: { format: keyof typeof FORMATS; output?: string }, command: Command) => {
      const output = here(options.output ?? '.');
      exitCode = await download(clientOf(command), token, { format: FORMATS[options.format], output }, io);
    });

  program
    .command('status')
    .description('the training server’s status, or a job’s state')
    .argument('[token]', 'a job’s token')
    .action(async (token: string | undefined, _options: unknown, command: Command) => {
      exitCode = await status(clientOf(command), token, io);
    });

  program
    .command('cancel')
    .description('remove a queued job, or stop a running one')
    .argument('<token>', 'the job’s token')
    .action(async (token: string, _options: unknown, command: Command) => {
      exitCode = await cancel(clientOf(command), token, io);
    });

  program
    .command('delete')
    .description('delete a model and its files')
    .argument('<token>', 'the model’s token')
    .action(async (token: string, _options: unknown, command: Command) => {
      exitCode = await remove(clientOf(command), token, io);
    });

  program
    .command('models')
    .description('admin: list every deployed model, newest first')
    .option('--admin-key <key>', 'the server’s admin key (default: FLASH_ADMIN_KEY)')
    .action(async (options: { adminKey?: string }, command: Command) => {
      const adminKey = options.adminKey ?? env.FLASH_ADMIN_KEY;
      if (!adminKey) command.error('error: models needs the admin key: pass --admin-key or set FLASH_ADMIN_KEY');
      exitCode = await models(clientOf(command, adminKey), io);
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
