import { createCanvas } from '@napi-rs/canvas';
import type { ChartConfiguration, ChartItem } from 'chart.js' with { 'resolution-mode': 'import' };

import type { EpochRecord } from '../documents';

// Chart.js is an ES module that also ships a CommonJS build, which `require` loads; the types
// are taken from the ES module.
const { Chart, registerables } = require('chart.js') as typeof import('chart.js', {
  with: { 'resolution-mode': 'import' },
});
Chart.register(...registerables);

const WIDTH = 640;
const HEIGHT = 400;

/**
 * The accuracy chart shown with a model: training and validation accuracy per epoch, drawn
 * by Chart.js on a server-side canvas and encoded as PNG.
 */
export function renderAccuracyPlot(history: readonly EpochRecord[]): Buffer {
  const canvas = createCanvas(WIDTH, HEIGHT);
  const configuration: ChartConfiguration<'line', number[], number> = {
    type: 'line',
    data: {
      labels: history.map((record) => record.epoch),
      datasets: [
        {
          label: 'Training accuracy',
          data: history.map((record) => record.train_accuracy),
          borderColor: '#2563eb',
          backgroundColor: '#2563eb',
        },
        {
          label: 'Validation accuracy',
          data: history.map((record) => record.val_accuracy),
          borderColor: '#ea580c',
          backgroundColor: '#ea580c',
        },
      ],
    },
    options: {
      animation: false,
      responsive: false,
      devicePixelRatio: 1,
      plugins: { title: { display: true, text: 'Accuracy per epoch' } },
      scales: {
        x: { title: { display: true, text: 'Epoch' } },
        y: { min: 0, max: 1, title: { display: true, text: 'Accuracy' } },
      },
    },
    plugins: [
      {
        id: 'white-background',
        beforeDraw: ({ ctx }) => {
          ctx.save();
          ctx.fillStyle = '#ffffff';
          ctx.fillRect(0, 0, WIDTH, HEIGHT);
          ctx.restore();
        },
      },
    ],
  };
  // Chart.js types its canvas as a DOM canvas; @napi-rs/canvas implements the same 2D API.
  const chart = new Chart(canvas.getContext('2d') as unknown as ChartItem, configuration);
  try {
    return canvas.toBuffer('image/png');
  } finally {
    chart.destroy();
  }
}
