// Headless rendering: Vega-Lite -> Vega -> SVG string with vega's View.toSVG() (renderer 'none',
// no browser, no canvas). Deterministic: text widths come from a fixed table (never measured with
// a canvas package that one machine may have and another not), the SVG's clip and gradient ids
// are reset before every render, and renders never overlap (those ids are module-global in vega).
import path from 'node:path';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { ZodType } from 'zod';
import { SNAPSHOTS, parseAs, readJson, type ChartName } from './schema.js';
import { SPECS } from './specs.js';

// Helvetica's advance widths (AFM, 1/1000 em) for ASCII 32..126; Arial has the same metrics.
// vega estimates 0.8 em per character without a canvas, which makes every title and legend far
// wider than it is drawn; these widths are as deterministic and close to what a browser draws.
// prettier-ignore
const HELVETICA = [
  278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, // space ! " # $ % & ' ( ) * + , - . /
  556, 556, 556, 556, 556, 556, 556, 556, 556, 556, // 0-9
  278, 278, 584, 584, 584, 556, 1015, // : ; < = > ? @
  667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, // A-Z
  278, 278, 278, 469, 556, 333, // [ \ ] ^ _ `
  556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, // a-z
  334, 260, 334, 584, // { | } ~
];
const OTHER: Record<string, number> = { '×': 584, '–': 556, '—': 1000, '…': 1000, '≥': 549, '≤': 549 };

/**
 * Text width in px: Helvetica metrics, bold 7 % wider, plus 12 % so that a wider substitute
 * (DejaVu Sans, where Helvetica and Arial are missing) still fits the space laid out.
 */
export function textWidth(text: string, fontSize: number, bold = false): number {
  let units = 0;
  for (const ch of text) {
    const c = ch.codePointAt(0)!;
    units += c >= 32 && c <= 126 ? HELVETICA[c - 32]! : (OTHER[ch] ?? 600);
  }
  return (units / 1000) * fontSize * (bold ? 1.07 : 1) * 1.12;
}

interface TextItem {
  fontSize?: number;
  fontWeight?: string | number;
  limit?: number;
}
const metrics = (vega as unknown as { textMetrics: { width: (item: TextItem, text: unknown) => number } }).textMetrics;
metrics.width = (item, text) => {
  const t = text == null ? '' : String(text).trim();
  const bold = item.fontWeight === 'bold' || (typeof item.fontWeight === 'number' && item.fontWeight >= 600);
  const w = textWidth(t, item.fontSize != null ? +item.fontSize || 0 : 11, bold);
  return item.limit !== undefined && item.limit > 0 ? Math.min(w, item.limit) : w;
};

let queue: Promise<unknown> = Promise.resolve();

export interface Rendered {
  svg: string;
  /** Vega-Lite's warnings while compiling (e.g. a channel it dropped): printed by the CLI. */
  warnings: string[];
}

/** The SVG of a Vega-Lite spec; the same spec always gives the same bytes. */
export function renderSvg(spec: TopLevelSpec): Promise<Rendered> {
  const run = async () => {
    const warnings: string[] = [];
    const logger = {
      level: (() => logger) as unknown,
      warn: (...a: unknown[]) => (warnings.push(a.map(String).join(' ')), logger),
      info: () => logger,
      debug: () => logger,
      error: (...a: unknown[]) => {
        throw new Error(a.map(String).join(' '));
      },
    };
    const { spec: vgSpec } = compile(spec, { logger: logger as never });
    vega.resetSVGDefIds();
    const view = new vega.View(vega.parse(vgSpec), { renderer: 'none', logLevel: vega.Error });
    try {
      return { svg: `${await view.toSVG()}\n`, warnings };
    } finally {
      view.finalize();
    }
  };
  const p = queue.then(run, run);
  queue = p.catch(() => {});
  return p;
}

/** Validates a chart's snapshot (throws InputError naming the file and field) and renders it. */
export async function renderChart(name: ChartName, dataDir: string, rel: (f: string) => string = (f) => f): Promise<Rendered & { out: string }> {
  const file = path.join(dataDir, SNAPSHOTS[name].file);
  const data = parseAs(SNAPSHOTS[name].schema as ZodType<unknown>, readJson(file, rel(file)), rel(file));
  const build = SPECS[name].build as (d: unknown) => TopLevelSpec;
  return { out: SPECS[name].out, ...(await renderSvg(build(data))) };
}
