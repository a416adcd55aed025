// The peft-ts CLI: help, usage errors (one line, non-zero exit), `inspect` on the parity fixture adapters, and the
// real entry point spawned once.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { AdapterInspection } from '../../src/cli/index.js';
import { SafetensorsFile } from '../../src/io/index.js';
import { cli } from './helpers.js';

process.env['PEFT_TS_QUIET'] = '1';
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const adapters = join(repoRoot, 'test/fixtures/parity/adapters');
const COMMANDS = ['train', 'xlora', 'generate', 'merge', 'inspect', 'scalings'];

/** Sum of the tensor sizes of a safetensors file, from its header. */
async function headerParameters(path: string): Promise<number> {
  const f = await SafetensorsFile.open(path);
  try {
    return f.keys().reduce((s, k) => s + f.info(k).shape.reduce((a, b) => a * b, 1), 0);
  } finally {
    await f.close();
  }
}

test('--help lists every command and exits 0', async () => {
  const r = await cli('--help');
  assert.equal(r.code, 0);
  for (const c of COMMANDS) assert.match(r.stdout, new RegExp(`^  ${c}\\b`, 'm'), `help lists ${c}`);
  assert.equal(r.stderr, '');
});

test('every command has --help', async () => {
  for (const argv of [['train'], ['xlora', 'train'], ['generate'], ['merge'], ['inspect'], ['scalings']]) {
    const r = await cli(...argv, '--help');
    assert.equal(r.code, 0, argv.join(' '));
    assert.match(r.stdout, new RegExp(`^Usage: peft-ts ${argv.join(' ')}`, 'm'));
  }
  const train = await cli('train', '--help');
  for (const flag of ['--model', '--data', '--method', '--r', '--alpha', '--target-modules', '--lr', '--epochs', '--max-steps', '--batch-size', '--max-length', '--eval-data', '--eval-steps', '--save-steps', '--out', '--resume', '--seed', '--packing']) {
    assert.ok(train.stdout.includes(flag), `train --help mentions ${flag}`);
  }
});

test('usage errors: one line on stderr, non-zero exit code', async () => {
  const cases: [string[], RegExp][] = [
    [['train', '--model', 'm', '--data', 'd', '--out', 'o', '--bogus'], /^peft-ts: unknown option '--bogus'/],
    [['--bogus'], /^peft-ts: unknown option '--bogus'/],
    [['frobnicate'], /^peft-ts: unknown command 'frobnicate'/],
    [['train', '--model', 'm', '--data', 'd', '--out', 'o', '--r', 'abc'], /^peft-ts: option '--r <rank>' argument 'abc' is invalid/],
    [['train', '--model', 'm', '--data', 'd', '--out', 'o', '--method', 'ia3'], /^peft-ts: option '--method <method>' argument 'ia3' is invalid/],
    [['train', '--data', 'd', '--out', 'o'], /^peft-ts: required option '--model <dir>' not specified/],
    [['inspect'], /^peft-ts: missing required argument 'dir'/],
    [['inspect', 'a', 'b'], /^peft-ts: too many arguments/],
    [['inspect', join(repoRoot, 'no-such-folder')], /^peft-ts: .*no-such-folder is not a folder\.$/],
    [['inspect', join(repoRoot, 'test/fixtures/parity/models/llama')], /^peft-ts: .* is not an adapter folder/],
    [['generate', '--model', join(repoRoot, 'no-such-model'), '--prompt', 'x'], /^peft-ts: /],
  ];
  for (const [argv, message] of cases) {
    const r = await cli(...argv);
    assert.notEqual(r.code, 0, argv.join(' '));
    assert.equal(r.stdout, '', argv.join(' '));
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 1, `one line for ${argv.join(' ')}: ${JSON.stringify(r.stderr)}`);
    assert.match(lines[0]!, message);
  }
});

test('inspect: LoRA fixture (method, r, alpha, targets, parameter count from the header)', async () => {
  const dir = join(adapters, 'lora-llama-qv');
  const r = await cli('inspect', dir, '--json');
  assert.equal(r.code, 0, r.stderr);
  const a = JSON.parse(r.stdout) as AdapterInspection;
  assert.equal(a.method, 'LoRA');
  assert.equal(a.layout, 'peft');
  assert.equal(a.r, 4);
  assert.equal(a.alpha, 8);
  assert.deepEqual(a.ranks, [4]);
  assert.deepEqual([...(a.targetModules as string[])].sort(), ['q_proj', 'v_proj']);
  assert.deepEqual(a.adaptedNames, { q_proj: 2, v_proj: 2 });
  assert.equal(a.baseModel, 'test/fixtures/parity/models/llama');
  assert.equal(a.tensors, 8);
  assert.equal(a.parameters, await headerParameters(join(dir, 'adapter_model.safetensors')));
  assert.equal(a.parameters, 8 * 4 * 64);
  assert.equal(a.groups.reduce((s, g) => s + g.parameters, 0), a.parameters);

  const text = await cli('inspect', dir);
  assert.equal(text.code, 0);
  assert.match(text.stdout, /^method: LoRA, PEFT layout$/m);
  assert.match(text.stdout, /^rank: r=4; alpha: 8$/m);
  assert.match(text.stdout, /^parameters: 2,048 in 8 tensors/m);
  assert.match(text.stdout, /model\.layers\.\*\.self_attn\.q_proj\.lora_A\.weight\s+x2\s+\[4, 64\]/);
});

test('inspect: LoHa fixture (rank pattern, ranks in the file)', async () => {
  const dir = join(adapters, 'loha-llama');
  const r = await cli('inspect', dir, '--json');
  assert.equal(r.code, 0, r.stderr);
  const a = JSON.parse(r.stdout) as AdapterInspection;
  const config = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')) as { r: number; alpha: number; target_modules: string[]; rank_pattern: Record<string, number> };
  assert.equal(a.method, 'LoHa');
  assert.equal(a.r, config.r);
  assert.equal(a.alpha, config.alpha);
  assert.deepEqual(a.rankPattern, config.rank_pattern);
  assert.deepEqual(a.ranks, [...new Set([config.r, ...Object.values(config.rank_pattern)])].sort((x, y) => x - y));
  assert.deepEqual([...(a.targetModules as string[])].sort(), [...config.target_modules].sort());
  assert.deepEqual(Object.keys(a.adaptedNames).sort(), [...config.target_modules].sort());
  assert.equal(a.parameters, await headerParameters(join(dir, 'adapter_model.safetensors')));
  const text = await cli('inspect', dir);
  assert.match(text.stdout, /^method: LoHa, PEFT layout$/m);
  assert.match(text.stdout, /hada_w1_a/);
});

test('inspect: X-LoRA fixture (classifier, experts, parameter counts)', async () => {
  const dir = join(adapters, 'xlora-llama');
  const r = await cli('inspect', dir, '--json');
  assert.equal(r.code, 0, r.stderr);
  const a = JSON.parse(r.stdout) as AdapterInspection;
  assert.equal(a.method, 'X-LoRA');
  assert.equal(a.layout, 'peft');
  assert.equal(a.xlora?.depth, 2);
  assert.equal(a.xlora?.size, 16);
  assert.equal(a.xlora?.topK, 2);
  assert.equal(a.xlora?.layerwise, true);
  assert.deepEqual(a.xlora?.experts.map((e) => e.name), ['0', '1', '2']);
  assert.ok(a.xlora!.experts.every((e) => e.method === 'LoRA'));
  const classifier = await headerParameters(join(dir, 'adapter_model.safetensors'));
  assert.equal(a.parameters, classifier);
  let experts = 0;
  for (const e of ['0', '1', '2']) experts += await headerParameters(join(dir, e, 'adapter_model.safetensors'));
  assert.equal(a.totalParameters, classifier + experts);
  const text = await cli('inspect', dir);
  assert.match(text.stdout, /^method: X-LoRA, PEFT layout$/m);
  assert.match(text.stdout, /^experts: 3 /m);
  assert.match(text.stdout, /internal_xlora_classifier/);
});

test('the real entry point runs: node --import tsx src/cli/main.ts --help', async () => {
  const main = join(repoRoot, 'src/cli/main.ts');
  assert.ok(readFileSync(main, 'utf8').startsWith('#!/usr/bin/env node\n'), 'main.ts starts with the node shebang');
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', main, '--help'], { cwd: repoRoot });
  for (const c of COMMANDS) assert.match(stdout, new RegExp(`^  ${c}\\b`, 'm'));
  const bad = await promisify(execFile)(process.execPath, ['--import', 'tsx', main, 'inspect', '--bogus'], { cwd: repoRoot }).then(
    () => assert.fail('a bad flag must fail'),
    (error: { code: number; stderr: string }) => error,
  );
  assert.equal(bad.code, 1);
  assert.equal(bad.stderr.trim().split('\n').length, 1);
  assert.match(bad.stderr, /^peft-ts: unknown option '--bogus'/);
});
