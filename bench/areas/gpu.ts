import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';

import type { AreaContext, AreaOutput } from '../lib/area';
import { PYTHON, REPO_ROOT } from '../lib/machine';

const run = promisify(execFile);

/**
 * The trainer's GPU benchmark (`python3 -m trainer.bench`, trainer/README.md): its loop against a
 * plain bf16/channels_last PyTorch loop on the same card, and a Flash-sized job's wall time.
 * It needs CUDA; without it this area says so and measures nothing.
 */
export async function gpuArea(ctx: AreaContext): Promise<AreaOutput> {
  const title = 'Training on the GPU (`python3 -m trainer.bench`)';
  const device = cudaDevice();
  if (!device) {
    return {
      title,
      markdown:
        'Skipped: no CUDA device on this machine. On a machine with one, `npm run bench -- gpu` runs `python3 -m trainer.bench` (224 px, batch 128, 20 epochs per job) and inserts its table here; `python3 -m trainer.bench --quick` checks the script on CPU.',
      targets: [
        {
          area: 'gpu',
          target: 'trainer throughput vs a plain PyTorch loop on the same card; Flash-sized job wall time',
          measured: 'no CUDA device here',
          met: null,
        },
      ],
    };
  }
  ctx.log(`gpu: python3 -m trainer.bench on ${device}${ctx.quick ? ' (--quick)' : ''}`);
  const { stdout } = await run(PYTHON, ['-m', 'trainer.bench', ...(ctx.quick ? ['--quick'] : [])], {
    cwd: REPO_ROOT,
    timeout: 40 * 60_000,
    maxBuffer: 16 * 1024 * 1024,
  });
  return {
    title: `${title} on ${device}`,
    markdown: ['Output of `python3 -m trainer.bench`' + (ctx.quick ? ' --quick' : '') + ':', '', stdout.trim()].join('\n'),
    targets: [
      {
        area: 'gpu',
        target: 'trainer throughput vs a plain PyTorch loop on the same card',
        measured: 'see the table (ours / reference)',
        met: null,
      },
    ],
  };
}

function cudaDevice(): string | null {
  try {
    const name = execFileSync(
      PYTHON,
      ['-c', 'import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")'],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 60_000 },
    ).trim();
    return name || null;
  } catch {
    return null;
  }
}
